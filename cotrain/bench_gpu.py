"""``python -m cotrain.bench_gpu``: every GPU check in one command (``scripts/gpu_check.sh``), within 8 minutes.

One worker process starts Python, torch and CUDA once and runs every case in turn (Ray, and the
packing's trainer processes, start once, when a case first needs them); on an H200 machine a fresh
process per case cost 19-43 s. In order, within ``--budget-s`` (450 s by default):

1. ``step``: step time and peak memory of Vanilla vs HFD + BSD at 512², batch 4, for MobileNetV2 +
   MiT-B1 and ResNet-50 + MiT-B2, in fp32 and bf16 + channels_last (``cotrain.bench``'s measurement);
2. ``packing``: 1, 2, 4 and (if memory allows) 8 trials sharing the GPU, as ``--gpus-per-trial 1/k``
   runs them: trainer processes started once, each building the real run (data, loader, pair) and
   training side by side; trial-epochs/hour, peak memory per trial, and the time spent waiting for data;
3. ``compile``: HFD + BSD and Vanilla with ``--compile`` (bf16 + channels_last), compile time beside the
   step time;
4. ``packing_tune``: 4 trials at 0.25 GPU through Tune + TorchTrainer (the sweep path), in the worker's one
   Ray session: throughput while all ran, and each trial's start-up;
5. ``trial``: a 1-epoch paper-preset CamVid trial through Tune + TorchTrainer (``--camvid-root``);
6. ``cuda_tests`` (only with ``--only cuda_tests``: they passed on an H200 on 2026-11-27, 137 s).

A case that overruns its limit has the worker stopped and recorded as ``timeout``; a failing one is
``failed``; the next case goes on (a fresh worker if needed). A case that would not fit the time left
is ``skipped``. One CSV row per case, rewritten after each, a printed table, the goals checked from
the rows (bf16 ≥ 1.3× fp32 images/s; HFD + BSD ≤ 1.15× the Vanilla step; 4 trials per GPU ≥ 2.5× one),
and the step times and packing throughput cached for the sweeps' ``--dry-run`` (``cotrain.estimate``).

    python -m cotrain.bench_gpu --dry-run                 # the cases, their expected times and limits
    python -m cotrain.bench_gpu --camvid-root ~/data/CamVid --out gpu_check.csv
    python -m cotrain.bench_gpu --quick                   # the same driver at a tiny size, on CPU
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from cotrain.bench import Settings, measure_case
from cotrain.bench.worker import CaseFailed, CaseSkipped, CaseTimeout, CaseWorker, is_shared, shared

PAIRS = ("mobilenet_v2+mit_b1", "resnet50+mit_b2")
# name -> (dtype, channels_last, compile)
PRECISIONS = {"fp32": ("fp32", False, False), "bf16": ("bf16", False, False),
              "bf16_cl": ("bf16", True, False), "bf16_cl_compile": ("bf16", True, True)}
STEP_CASES = ("vanilla_pair", "hfd_bsd")
CHECKS = ("step", "packing", "compile", "packing_tune", "trial", "cuda_tests")
DEFAULT_CHECKS = CHECKS[:-1]
COLUMNS = ("check", "pair", "precision", "case", "status", "seconds", "step_s", "first_step_s", "compile_s",
           "peak_mem_mb", "images_per_s", "trials", "trial_epochs_per_h", "data_wait_frac", "startup_s",
           "miou_cnn", "miou_vit", "worker", "note")
GOALS = (("bf16 / fp32 images/s", 1.3, ">="), ("HFD + BSD step / Vanilla step", 1.15, "<="),
         ("4 trials per GPU / 1, images/s", 2.5, ">="))
SCRIPT_LIMIT_S = 480  # scripts/gpu_check.sh stops everything after 8 minutes
REPO = Path(__file__).resolve().parents[1]


def _h200_times() -> dict:
    """(expected, limit) seconds per kind of case on an H200 machine, in-process. The expectations are
    estimates from the 2026-11-26/27 runs (a fresh-process step case took 19-43 s, most of it start-up;
    an in-process case pays none of it); the limits only stop a hung case."""
    return {"start": (30, 150), "step": (8, 45), "packing_first": (45, 150), "packing": (25, 90),
            "compile_first": (110, 200), "compile": (25, 120), "packing_tune": (75, 180), "trial": (90, 180),
            "cuda_tests": (140, 200)}


@dataclass(frozen=True)
class Plan:
    """What the check runs, and each kind of case's (expected, limit) seconds."""

    device: str = "cuda"
    size: int = 512
    batch: int = 4
    steps: int = 10
    warmup: int = 3
    pairs: tuple[str, ...] = PAIRS
    precisions: tuple[str, ...] = ("fp32", "bf16_cl")
    compile_pair: str = PAIRS[0]
    packing: tuple[int, ...] = (1, 2, 4, 8)
    packing_s: float = 10.0  # wall-clock seconds every level trains side by side
    tune_trials: int = 4
    tune_epochs: int = 3
    tune_steps: int = 25  # training steps per epoch in the Tune packing trials
    trial_dataset: str = "camvid"
    trial_preset: str = "paper"
    budget_s: float = 450.0
    times: dict = field(default_factory=_h200_times)


QUICK = dict(device="cpu", size=64, batch=2, steps=2, warmup=1, pairs=("mobilenet_v2+mit_b0",),
             precisions=("fp32",), compile_pair="", packing=(1, 2), packing_s=3.0, tune_trials=2, tune_epochs=2,
             tune_steps=2, trial_dataset="builtin", trial_preset="smoke", budget_s=1800.0,  # a shared 2-core CPU
             times={"start": (30, 300), "step": (10, 200), "packing_first": (40, 300), "packing": (20, 300),
                    "compile_first": (60, 600), "compile": (30, 600), "packing_tune": (90, 600),
                    "trial": (60, 600), "cuda_tests": (60, 300)})


@dataclass(frozen=True)
class Case:
    """One measurement: ``fn(*args)`` in the worker; ``expect_s`` plans the budget, ``limit_s`` stops a hang."""

    check: str
    label: dict
    expect_s: float
    limit_s: float
    fn: Callable
    args: tuple


# ----------------------------------------------------------------------------- the cases (run in the worker)


def gpu_hello() -> dict:
    """The worker's start: torch, the loop and CUDA (its context) once; the device's name and memory."""
    import torch

    import cotrain.engine.loop  # noqa: F401  (every case needs it)
    info = {"pid": os.getpid(), "device_name": f"cpu ({os.cpu_count()} cores)",
            "total_mem_mb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20}
    if torch.cuda.is_available():
        torch.zeros(1, device="cuda")
        info.update(device_name=torch.cuda.get_device_name(0),
                    total_mem_mb=torch.cuda.get_device_properties(0).total_memory / 2**20)
    return info


def step_settings(plan: Plan, pair: str, precision: str) -> Settings:
    dtype, channels_last, compile_ = PRECISIONS[precision]
    return Settings(pair=pair, size=plan.size, batch=plan.batch, steps=plan.steps, warmup=plan.warmup,
                    repeats=1, device=plan.device, dtype=dtype, compile=compile_, channels_last=channels_last)


def measure_step(settings: Settings, case: str) -> dict:
    """``cotrain.bench.measure_case`` in this process: median step, the first step, compile time, peak memory."""
    import gc

    import torch
    if settings.compile:
        torch._dynamo.reset()  # each compiled case compiles afresh (inductor's on-disk cache may still help)
    result = measure_case(settings, case)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    step = statistics.median(result["times"])
    row = {"step_s": step, "peak_mem_mb": result["peak_mem_mb"], "images_per_s": settings.batch / step,
           "first_step_s": result["warmup_times"][0] if result["warmup_times"] else None}
    if settings.compile:
        row["compile_s"] = compile_seconds(result["warmup_times"], step)
    return row


def compile_seconds(warmup_times: list[float], step_s: float) -> float:
    """Seconds the warm-up steps took beyond as many ordinary steps: ``torch.compile``'s cost."""
    return max(sum(warmup_times) - len(warmup_times) * step_s, 0.0)


def packing_level(cfg, trials: int, seconds: float, pool_size: int, warmup: int) -> dict:
    """``trials`` copies of ``cfg`` training side by side on the device (``cotrain.bench.packing``)."""
    from cotrain.bench.packing import TrainerPool, summarise
    from cotrain.data import ensure_builtin
    device = "cuda" if cfg.device == "cuda" else "cpu"
    ensure_builtin()  # once, before the trainers read it
    fresh = not is_shared("trainers")
    pool = shared("trainers", lambda: TrainerPool(pool_size, device))
    _require_memory(pool, trials)
    row = summarise(pool.measure(cfg, trials, seconds, warmup), cfg.batch_size, _train_images(cfg, epoch=True))
    row["note"] = (f"{seconds:g} s side by side; data wait {row['data_wait_frac']:.0%} of a trial's time"
                   + (f"; {pool_size} trainer processes started in {pool.start_s:.0f} s" if fresh else ""))
    return row


def _require_memory(pool, trials: int) -> None:
    """Skip a level whose trials would not fit the device: measured peak per trial (largest level so far)."""
    if not pool.peak_mem_mb:
        return
    measured = max(pool.peak_mem_mb)
    per_trial = pool.peak_mem_mb[measured] + (600 if pool.device == "cuda" else 0)  # + a CUDA context
    total = gpu_hello()["total_mem_mb"]
    if trials * per_trial > 0.95 * total:
        raise CaseSkipped(f"{trials} trials would need ~{trials * per_trial / 1024:.0f} GiB ({per_trial:.0f} MiB "
                          f"each at {measured} per device), the device has {total / 1024:.0f} GiB")


def tune_trials(cfg, trials: int, gpus_per_trial: float, cpus_per_trial: float) -> dict:
    """``trials`` copies of ``cfg`` (seeds 0..n-1) in one Tune experiment through TorchTrainer, in the
    worker's one Ray session: the trials' throughput while all of them ran, and their start-up."""
    from ray import tune

    from cotrain.cli import preflight
    from cotrain.launch import Resources, ray_session, run_experiment
    preflight(cfg)
    shared("ray", lambda: ray_session(quiet=True))
    space = {**cfg.to_dict(), "seed": tune.grid_search(list(range(trials)))}
    resources = Resources(cpus_per_worker=cpus_per_trial, gpus_per_worker=gpus_per_trial, max_failures=0)
    with tempfile.TemporaryDirectory() as storage:
        start = time.time()
        grid = run_experiment(space, name=cfg.name, storage=storage, resources=resources, verbose=0)
        wall = time.time() - start
        errors = [str(r.error).splitlines()[0] for r in grid if r.error]
        if errors:
            raise RuntimeError(errors[0])
        reports = [r.metrics_dataframe.to_dict("records") for r in grid]
    row = concurrent_throughput(reports, _train_images(cfg), start)
    metrics = [r.metrics for r in grid]
    row.update(trials=trials, miou_cnn=statistics.mean(m["miou_cnn"] for m in metrics),
               miou_vit=statistics.mean(m["miou_vit"] for m in metrics),
               note=f"wall {wall:.0f} s; {row.pop('overlap')}; Ray session {_ray_session_name()}")
    return row


def concurrent_throughput(reports: list[list[dict]], images_per_epoch: int, began: float) -> dict:
    """Training throughput of trials that ran side by side, from their per-epoch reports.

    Counts each trial's epochs that ended while every trial was past its first epoch and none had ended
    (``timestamp``; ``time_this_iter_s`` is an epoch's wall time); with no such epoch (trials that barely
    overlapped) a trial's epochs after its first. ``startup_s``: mean of first report - start - first epoch.
    """
    window = (max(r[0]["timestamp"] for r in reports), min(r[-1]["timestamp"] for r in reports))
    rates, partial = [], False
    for trial in reports:
        inside = [e["time_this_iter_s"] for e in trial[1:] if window[0] < e["timestamp"] <= window[1]]
        if not inside:
            partial = True
            inside = [e["time_this_iter_s"] for e in trial[1:]] or [trial[-1]["time_this_iter_s"]]
        rates.append(len(inside) / sum(inside))
    startup = statistics.mean(r[0]["timestamp"] - began - r[0]["time_this_iter_s"] for r in reports)
    return {"images_per_s": sum(rates) * images_per_epoch, "trial_epochs_per_h": 3600 * sum(rates),
            "startup_s": max(startup, 0.0),
            "overlap": "trials overlapped only partly" if partial else "epochs while all trials ran"}


def _ray_session_name() -> str:
    import ray
    return ray._private.worker._global_node.session_name


def _train_images(cfg, epoch: bool = False) -> int:
    """Training images per epoch of ``cfg`` (``epoch``: the whole split, not capped by ``max_train_steps``)."""
    from cotrain.data import get_dataset
    steps = len(get_dataset(cfg.dataset, cfg.data_root, "train")) // cfg.batch_size
    return (steps if epoch else min(steps, cfg.max_train_steps or steps)) * cfg.batch_size


def run_cuda_tests() -> dict:
    """The CUDA path's tests (they skip without a GPU); the pytest summary becomes the note."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
                           "tests/engine/test_gpu_path.py"], cwd=REPO, capture_output=True, text=True)
    summary = (done.stdout.strip().splitlines() or [""])[-1]
    if done.returncode != 0:
        raise RuntimeError(summary or done.stderr.strip().splitlines()[-1])
    return {"note": summary}


# ----------------------------------------------------------------------------- the plan


def trial_config(plan: Plan, dataset: str, preset: str, data_root: str | None, steps: int | None, epochs: int):
    """A real training config (random init: no network for ImageNet weights) for a timed trial."""
    from cotrain.config import resolve
    cnn, _, vit = plan.pairs[0].partition("+")
    overrides = dict(cnn=cnn, vit=vit, dataset=dataset, data_root=data_root, weights=None, epochs=epochs,
                     device=plan.device, name="gpu-check")
    if steps is not None:
        overrides.update(crop_size=plan.size, batch_size=plan.batch, max_train_steps=steps, max_val_images=4,
                         num_workers=4 if plan.device == "cuda" else 0)
    return resolve(preset, overrides=overrides)


def _case(plan: Plan, check: str, kind: str, label: dict, fn: Callable, args: tuple) -> Case:
    expect, limit = plan.times[kind]
    return Case(check, label, expect, limit, fn, args)


def step_cases(plan: Plan) -> list[Case]:
    return [_case(plan, "step", "step", {"pair": pair, "precision": precision, "case": case}, measure_step,
                  (step_settings(plan, pair, precision), case))
            for pair in plan.pairs for precision in plan.precisions for case in STEP_CASES]


def packing_cases(plan: Plan) -> list[Case]:
    cfg = trial_config(plan, "builtin", "cpu", None, plan.tune_steps, epochs=1)
    return [_case(plan, "packing", "packing_first" if index == 0 else "packing",
                  {"pair": plan.pairs[0], "case": f"{trials} trial(s) per {'GPU' if plan.device == 'cuda' else 'CPU'}"},
                  packing_level,
                  (cfg, trials, plan.packing_s, max(plan.packing), plan.warmup))
            for index, trials in enumerate(plan.packing)]


def compile_cases(plan: Plan) -> list[Case]:
    if not plan.compile_pair:
        return []
    settings = step_settings(plan, plan.compile_pair, "bf16_cl_compile")
    return [_case(plan, "compile", "compile_first" if index == 0 else "compile",
                  {"pair": plan.compile_pair, "precision": "bf16_cl_compile", "case": case}, measure_step,
                  (settings, case)) for index, case in enumerate(STEP_CASES[::-1])]


def tune_cases(plan: Plan, camvid_root: str | None) -> list[Case]:
    from cotrain.launch import local_cpu_share
    cpus, cuda = local_cpu_share(1), plan.device == "cuda"
    share = 1 / plan.tune_trials
    packed = trial_config(plan, "builtin", "cpu", None, plan.tune_steps, epochs=plan.tune_epochs)
    cases = [_case(plan, "packing_tune", "packing_tune",
                   {"pair": plan.pairs[0], "case": f"{plan.tune_trials} trials, {share:g} GPU each, Tune"},
                   tune_trials, (packed, plan.tune_trials, share if cuda else 0.0, cpus * share))]
    if plan.trial_dataset != "camvid" or camvid_root:
        root = camvid_root if plan.trial_dataset == "camvid" else None
        trial = trial_config(plan, plan.trial_dataset, plan.trial_preset, root, None, epochs=1)
        cases.append(_case(plan, "trial", "trial",
                           {"pair": plan.pairs[0], "case": f"{plan.trial_dataset} {plan.trial_preset}, 1 epoch"},
                           tune_trials, (trial, 1, 1.0 if cuda else 0.0, cpus)))
    return cases


def plan_cases(plan: Plan, camvid_root: str | None, checks: Sequence[str] = DEFAULT_CHECKS) -> list[Case]:
    """The chosen checks' cases in run order (the never-measured packing and compile before the rest of Tune)."""
    tune = tune_cases(plan, camvid_root)
    cases = [*step_cases(plan), *packing_cases(plan), *compile_cases(plan), *tune]
    if "cuda_tests" in checks:
        cases.insert(0, _case(plan, "cuda_tests", "cuda_tests", {}, run_cuda_tests, ()))
    return [c for c in cases if c.check in checks]


# ----------------------------------------------------------------------------- running them


def run_case(worker: CaseWorker, case: Case, limit_s: float) -> dict:
    """``case`` in the worker; its row, with status ok, failed, skipped or timeout."""
    row = {"check": case.check, **case.label}
    start = time.perf_counter()
    try:
        row.update(worker.call(case.fn, case.args, limit_s), status="ok")
    except CaseTimeout:
        row.update(status="timeout", note=f"over its {limit_s:.0f} s limit; the worker was stopped")
    except CaseSkipped as exc:
        row.update(status="skipped", note=str(exc))
    except CaseFailed as exc:
        row.update(status="failed", note=str(exc))
    row["seconds"] = time.perf_counter() - start
    row.setdefault("worker", worker.info.get("pid"))
    return row


def run_check(cases: Sequence[Case], budget_s: float, worker: CaseWorker,
              on_row: Callable[[list[dict]], None] = lambda rows: None, rows: Sequence[dict] = ()) -> list[dict]:
    """Every case within ``budget_s`` in ``worker`` (started when first needed, and again after a time-out);
    a case expected to take longer than what is left is ``skipped``. ``on_row(rows so far)`` after each
    row (the command line prints it and rewrites the CSV, so a check cut short still leaves its rows);
    ``rows``: rows already made (the first start's)."""
    deadline = time.perf_counter() + budget_s
    rows = list(rows)
    for case in cases:
        left = deadline - time.perf_counter()
        if worker.process is None and left >= case.expect_s and not _start_failed(rows):
            rows.append(start_row(worker, left))
            on_row(rows)
            left = deadline - time.perf_counter()
        if left < case.expect_s:
            note = f"out of time budget ({left:.0f} s left, expects {case.expect_s:.0f} s)"
            rows.append({"check": case.check, **case.label, "status": "skipped", "note": note})
        elif worker.process is None:
            rows.append({"check": case.check, **case.label, "status": "skipped", "note": "the worker did not start"})
        else:
            rows.append(run_case(worker, case, min(case.limit_s, left)))
        on_row(rows)
    return rows


def _start_failed(rows: Sequence[dict]) -> bool:
    return any(r["check"] == "start" and r["status"] != "ok" for r in rows)


def start_row(worker: CaseWorker, left: float | None = None) -> dict:
    """Start ``worker`` (within ``left`` seconds, at most its own limit); a row saying how long it took."""
    row = {"check": "start", "case": "worker: Python, torch, the device", "status": "ok"}
    start = time.perf_counter()
    try:
        info = worker.start(None if left is None else min(worker.start_limit_s, left))
        row.update(worker=info["pid"], note=info.get("device_name", ""))
    except (CaseTimeout, CaseFailed) as exc:
        row.update(status="failed", note=str(exc))
    row["seconds"] = time.perf_counter() - start
    return row


def goals(rows: list[dict]) -> list[dict]:
    """The issue's goals, each a measured ratio (rows that exist only)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    steps = {(r["pair"], r["precision"], r["case"]): r for r in ok if r["check"] in ("step", "compile")}
    out = []
    for pair in dict.fromkeys(key[0] for key in steps):
        fp32, bf16 = steps.get((pair, "fp32", "hfd_bsd")), steps.get((pair, "bf16_cl", "hfd_bsd"))
        if fp32 and bf16:
            out.append(_goal(0, pair + " (bf16 + channels_last)", bf16["images_per_s"] / fp32["images_per_s"]))
        for precision in ("bf16_cl", "bf16_cl_compile", "fp32"):
            vanilla, ours = steps.get((pair, precision, "vanilla_pair")), steps.get((pair, precision, "hfd_bsd"))
            if vanilla and ours:
                out.append(_goal(1, f"{pair} ({precision})", ours["step_s"] / vanilla["step_s"]))
    packing = {r["trials"]: r for r in ok if r["check"] == "packing"}
    if 1 in packing and 4 in packing:
        out.append(_goal(2, packing[1]["pair"], packing[4]["images_per_s"] / packing[1]["images_per_s"]))
    return out


def _goal(index: int, what: str, ratio: float) -> dict:
    name, target, sense = GOALS[index]
    met = ratio >= target if sense == ">=" else ratio <= target
    return {"goal": name, "on": what, "measured": round(ratio, 3), "target": f"{sense} {target}",
            "met": "yes" if met else "no"}


def cache_entries(rows: list[dict], plan: Plan, device_name: str) -> dict[str, dict]:
    """The measured step times and packing throughput, keyed as ``cotrain.estimate`` looks them up."""
    from cotrain.estimate import cache_key
    stamp = {"measured": time.strftime("%Y-%m-%dT%H:%M:%S"), "device_name": device_name}
    dtypes = {"fp32": "fp32", "bf16_cl": "bf16"}  # bf16 + channels_last: the training default
    entries: dict[str, dict] = {}
    for row in rows:
        if row.get("status") != "ok":
            continue
        if row["check"] == "step" and row.get("precision") in dtypes:
            key = cache_key(row["pair"], plan.size, plan.batch, plan.device, dtypes[row["precision"]])
            entries.setdefault(key, {**stamp, "step_s": {}})["step_s"][row["case"]] = row["step_s"]
        elif row["check"] == "packing":
            dtype = "bf16" if plan.device == "cuda" else "fp32"  # the packed trials train with the defaults
            key = cache_key(row["pair"], plan.size, plan.batch, plan.device, dtype)
            entry = entries.setdefault(key, {**stamp, "step_s": {}})
            entry.setdefault("packing_images_per_s", {})[str(row["trials"])] = row["images_per_s"]
    return entries


# ----------------------------------------------------------------------------- output


def format_row(row: dict) -> str:
    what = " ".join(str(row[k]) for k in ("pair", "precision", "case") if row.get(k))
    keys = ("step_s", "first_step_s", "compile_s", "peak_mem_mb", "images_per_s", "trial_epochs_per_h",
            "startup_s", "miou_cnn", "miou_vit")
    numbers = "  ".join(f"{k} {row[k]:.4g}" for k in keys if isinstance(row.get(k), float))
    took = f"{row['seconds']:.0f} s" if "seconds" in row else "-"
    return f"  {row['check']:<12} {row['status']:<8} {took:>5}  {what}  {numbers}  {row.get('note', '')}".rstrip()


def write_csv(rows: list[dict], path: Path, device_name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*COLUMNS, "device"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**{c: _csv_cell(row.get(c)) for c in COLUMNS}, "device": device_name})


def _csv_cell(value):
    return f"{value:.5g}" if isinstance(value, float) else ("" if value is None else value)


def markdown_table(rows: list[dict], columns: Sequence[str]) -> str:
    import pandas as pd
    frame = pd.DataFrame([{c: _csv_cell(r.get(c)) for c in columns} for r in rows], columns=list(columns))
    return frame.to_markdown(index=False)


def print_plan(plan: Plan, cases: Sequence[Case], camvid_root: str | None) -> int:
    start_expect, start_limit = plan.times["start"]
    expected = start_expect + sum(c.expect_s for c in cases)
    print(f"would run {len(cases)} cases on {plan.device} in one worker process, within {plan.budget_s:.0f} s "
          f"({plan.size}x{plan.size}, batch {plan.batch}, {plan.steps} timed steps after {plan.warmup}):")
    print(f"  {'start':<12} expect {start_expect:>4.0f} s  limit {start_limit:>4.0f} s  "
          "Python, torch, the device (once)")
    for case in cases:
        what = " ".join(str(case.label[k]) for k in ("pair", "precision", "case") if k in case.label)
        print(f"  {case.check:<12} expect {case.expect_s:>4.0f} s  limit {case.limit_s:>4.0f} s  {what}")
    if plan.trial_dataset == "camvid" and not camvid_root:
        print("  (trial: skipped, no --camvid-root)")
    print(f"expected {expected:.0f} s of the {plan.budget_s:.0f} s budget (scripts/gpu_check.sh stops at "
          f"{SCRIPT_LIMIT_S} s); a case expected to take longer than what is left is skipped, one over its "
          "limit is stopped")
    return 0


# ----------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    from cotrain.cli import OneLineParser
    parser = OneLineParser(prog="python -m cotrain.bench_gpu", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="list the cases and their time budgets, run nothing")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, builtin data: the same driver, fast")
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None, help="default: cuda (--quick: cpu)")
    parser.add_argument("--camvid-root", default=None, help="CamVid (SegNet layout) for the 1-epoch trial")
    parser.add_argument("--budget-s", type=float, default=None, help="overall time limit (default 450)")
    parser.add_argument("--only", nargs="+", choices=CHECKS, help="run only these checks")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.csv"), help="CSV file to write")
    parser.add_argument("--cache", type=Path, default=None,
                        help="step-time cache to record the results in (default: the sweeps' cache on CUDA; "
                             "none with --quick)")
    parser.add_argument("--no-cache", action="store_true", help="do not record step times and packing")
    return parser


def plan_from_args(args: argparse.Namespace) -> Plan:
    from cotrain.cli import fail
    plan = Plan(**QUICK) if args.quick else Plan()
    if args.device:
        plan = replace(plan, device=args.device)
    if args.budget_s is not None:
        if args.budget_s <= 0:
            fail(f"--budget-s {args.budget_s:g} is invalid: must be > 0")
        plan = replace(plan, budget_s=args.budget_s)
    return plan


def cache_path(args: argparse.Namespace, plan: Plan) -> Path | None:
    from cotrain.estimate import step_cache_path
    if args.no_cache:
        return None
    return args.cache or (step_cache_path() if plan.device == "cuda" and not args.quick else None)


def main(argv: Sequence[str] | None = None) -> int:
    from cotrain.cli import fail
    args = build_parser().parse_args(argv)
    plan = plan_from_args(args)
    if args.camvid_root and not Path(args.camvid_root).is_dir():
        fail(f"--camvid-root {args.camvid_root} is invalid: not a folder")
    cases = plan_cases(plan, args.camvid_root, args.only or DEFAULT_CHECKS)
    if args.dry_run:
        return print_plan(plan, cases, args.camvid_root)
    print(f"GPU check on {plan.device}: {len(cases)} cases in one worker process, at most {plan.budget_s:.0f} s",
          flush=True)
    began = time.perf_counter()
    worker = CaseWorker(gpu_hello, start_limit_s=plan.times["start"][1])
    try:
        first = start_row(worker)
        if plan.device == "cuda" and worker.info and worker.info["device_name"].startswith("cpu"):
            fail("no CUDA device: run on a GPU machine, or use --dry-run / --quick --device cpu")
        return run_and_report(plan, cases, args, worker, first, plan.budget_s - (time.perf_counter() - began))
    finally:
        worker.close()


def run_and_report(plan: Plan, cases: Sequence[Case], args: argparse.Namespace, worker: CaseWorker, first: dict,
                   budget_s: float) -> int:
    """Run the cases after the worker's first start (row ``first``); print, write and cache the results."""
    name = worker.info.get("device_name", plan.device)

    def on_row(rows: list[dict]) -> None:
        print(format_row(rows[-1]), flush=True)
        write_csv(rows, args.out, name)

    on_row([first])
    rows = run_check(cases, budget_s, worker, on_row, [first])
    print("\n" + markdown_table(rows, [c for c in COLUMNS if any(r.get(c) not in (None, "") for r in rows)]))
    met = goals(rows)
    if met:
        print("\n" + markdown_table(met, ["goal", "on", "measured", "target", "met"]))
    path, entries = cache_path(args, plan), cache_entries(rows, plan, name)
    if path is not None and entries:
        from cotrain.estimate import update_entries
        print(f"\nstep times and packing cached in {update_entries(entries, path)}")
    print(f"\n{name}; worker started {len(worker.starts)} time(s); wrote {args.out}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
