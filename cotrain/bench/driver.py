"""The benchmark driver: every step case in fresh processes, rotated over repeats; then loader and eval throughput."""
from __future__ import annotations

import multiprocessing
import statistics

from cotrain.bench.cases import measure_case, measure_eval
from cotrain.bench.settings import Settings, case_config
from cotrain.estimate import CASES


def run_benchmark(settings: Settings, log=print) -> list[dict]:
    """Every step case (interleaved over ``repeats``), then loader and evaluation throughput; one row each."""
    results: dict[str, list[dict]] = {case: [] for case in CASES}
    for repeat in range(settings.repeats):
        order = CASES[repeat % len(CASES):] + CASES[:repeat % len(CASES)]
        order = order[::-1] if repeat % 2 else order
        for case in order:
            result = _in_fresh_process(measure_case, settings, case)
            results[case].append(result)
            log(f"  [{repeat + 1}/{settings.repeats}] {case:<13} median {statistics.median(result['times']):.4f} s  "
                f"peak +{result['peak_mem_mb']:.0f} MiB")
    rows = [_step_row(case, results[case], settings) for case in CASES]
    vanilla = rows[CASES.index("vanilla_pair")]
    for row in rows:
        row["step_ratio_vs_vanilla"] = row["step_s_median"] / vanilla["step_s_median"]
        row["mem_ratio_vs_vanilla"] = row["peak_mem_mb"] / vanilla["peak_mem_mb"] if vanilla["peak_mem_mb"] else None
    rows.append(_loader_row(settings, rows[CASES.index("hfd_bsd")]["step_s_median"]))
    for name, rate in _in_fresh_process(measure_eval, settings).items():
        rows.append({"case": name, "images_per_s": rate, "note": _eval_note(name, settings)})
    return rows


def _in_fresh_process(fn, *args):
    """``fn(*args)`` in a newly spawned process (fresh allocator, fresh RSS high-water mark)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def _step_row(case: str, results: list[dict], settings: Settings) -> dict:
    times = [t for r in results for t in r["times"]]
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    median = statistics.median(times)
    return {"case": case, "step_s_median": median, "step_s_min": min(times), "step_s_iqr": q[2] - q[0],
            "steps_timed": len(times), "peak_mem_mb": statistics.median(r["peak_mem_mb"] for r in results),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in results),
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
