"""The benchmark driver: peak memory per case in fresh processes, step times in interleaved rounds in one
process (ratios with 95 % intervals, ``stats``); then loader and eval throughput."""
from __future__ import annotations

import multiprocessing
import statistics
import sys
from dataclasses import replace

from cotrain.bench.cases import measure_case, measure_eval, measure_rounds
from cotrain.bench.settings import Settings, case_config
from cotrain.bench.stats import Ratio, ratio_interval, round_ratios
from cotrain.estimate import CASES

MEMORY_STEPS = 2  # timed steps of the memory pass (its peak comes with the first steps)


def run_benchmark(settings: Settings, log=print) -> list[dict]:
    """Peak memory of every case (one fresh process each), step times over ``repeats`` interleaved rounds
    (one process holding every case), then loader and evaluation throughput; one row each."""
    memory = {}
    for case in CASES:
        memory[case] = _in_fresh_process(measure_case, replace(settings, steps=MEMORY_STEPS), case)
        log(f"  memory {case:<13} peak +{memory[case]['peak_mem_mb']:.0f} MiB")
    log(f"  step times: {settings.repeats} rounds x {settings.steps} steps per case, cases interleaved")
    rounds = _in_fresh_process(measure_rounds, settings)
    rows = [_step_row(case, rounds[case], memory[case], settings) for case in CASES]
    vanilla = rows[CASES.index("vanilla_pair")]
    for row in rows:
        ratio = ratio_interval(round_ratios(rounds[row["case"]], rounds["vanilla_pair"]))
        row.update(_ratio_columns(ratio))
        row["mem_ratio_vs_vanilla"] = row["peak_mem_mb"] / vanilla["peak_mem_mb"] if vanilla["peak_mem_mb"] else None
    rows.append(_loader_row(settings, rows[CASES.index("hfd_bsd")]["step_s_median"]))
    for name, rate in _in_fresh_process(measure_eval, settings).items():
        rows.append({"case": name, "images_per_s": rate, "note": _eval_note(name, settings)})
    return rows


def _ratio_columns(ratio: Ratio) -> dict:
    return {"step_ratio_vs_vanilla": ratio.value, "step_ratio_ci95_low": ratio.low,
            "step_ratio_ci95_high": ratio.high, "rounds": ratio.rounds}


# What every case process imports: the fork server imports it once and each case forks from it, so a case
# starts in a fraction of a second instead of importing torch, timm and smp again (seconds each on 2 cores).
PRELOAD = ["torch", "timm", "segmentation_models_pytorch", "cotrain.engine.loop", "cotrain.bench.cases"]


def _case_context():
    """Fresh processes for the cases: forked from a fork server that has imported ``PRELOAD`` (no CUDA
    context, no allocations: each case still starts with a fresh allocator). Spawned elsewhere than on Linux
    (macOS frameworks that torch loads are not safe to fork)."""
    if not sys.platform.startswith("linux") or "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def _in_fresh_process(fn, *args):
    """``fn(*args)`` in a new process (fresh allocator; ``PeakMemory`` resets the RSS high-water mark)."""
    with _case_context().Pool(1) as pool:
        return pool.apply(fn, args)


def _step_row(case: str, rounds: list[list[float]], memory: dict, settings: Settings) -> dict:
    times = [t for r in rounds for t in r]
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    median = statistics.median(times)
    return {"case": case, "step_s_median": median, "step_s_min": min(times), "step_s_iqr": q[2] - q[0],
            "steps_timed": len(times), "peak_mem_mb": memory["peak_mem_mb"], "peak_rss_mb": memory["peak_rss_mb"],
            "images_per_s": settings.batch / median, "note": ""}


def _loader_row(settings: Settings, step_s: float) -> dict:
    """The training loader with the cpu preset's workers; the note compares one batch's time to a step."""
    from cotrain.data import get_dataset, train_transform
    from cotrain.data.bench import loader_throughput
    cfg = case_config(settings, "hfd_bsd")
    dataset = get_dataset(cfg.dataset, cfg.data_root, "train")
    rate = loader_throughput(dataset, train_transform(settings.size), settings.batch, cfg.num_workers,
                             settings.loader_batches)
    batch_s = settings.batch / rate
    return {"case": "loader", "images_per_s": rate,
            "note": f"{cfg.dataset}, {cfg.num_workers} worker(s): {batch_s:.4f} s/batch = "
                    f"{batch_s / step_s:.2f}x the hfd_bsd step"}


def _eval_note(name: str, settings: Settings) -> str:
    s = settings.size
    return f"{s}x{s} images, batch 1" if name == "eval_whole" else \
        f"{2 * s}x{2 * s} images, window {s} stride {max(2 * s // 3, 1)}"
