"""``python -m cotrain.bench_gpu``: every GPU check in one command (``scripts/gpu_check.sh``).

Runs, within ``--budget-s`` (default 540 s, for a 10-minute slot on one H100/H200, no network):

1. ``cuda_tests``: ``tests/engine/test_gpu_path.py`` (bf16 autocast, channels_last, cudnn
   benchmark, pinned memory, no device syncs in a step);
2. ``step``: step time and peak memory of Vanilla vs HFD + BSD at 512², batch 4, for
   MobileNetV2 + MiT-B1 and ResNet-50 + MiT-B2, in fp32, bf16 and bf16 + channels_last
   (``cotrain.bench``'s measurement, one fresh process per case);
3. ``packing``: one trial per GPU vs two sharing it (``--gpus-per-trial 0.5``) through Tune +
   TorchTrainer, aggregate training images/s of the last epoch;
4. ``trial``: a 1-epoch paper-preset trial through Tune + TorchTrainer on CamVid
   (``--camvid-root``; no ImageNet weights: the machine has no network);
5. ``compile``: HFD + BSD with ``--compile`` (last: it may not build in its budget).

Every case runs guarded, in its own process with its own time limit: a failing or slow
case is recorded as ``failed``/``timeout`` and the others still run. One CSV row per
measurement, a printed table, and the goals (bf16 ≥ 1.5× fp32 images/s; HFD + BSD ≤ 1.15×
the Vanilla step; two trials per GPU ≥ 1.5× one) checked from the rows.

    python -m cotrain.bench_gpu --dry-run                 # what would run, and each case's budget
    python -m cotrain.bench_gpu --camvid-root ~/data/CamVid --out gpu_check.csv
    python -m cotrain.bench_gpu --quick                   # every non-CUDA code path at a tiny size, on CPU
"""
from __future__ import annotations

import argparse
import csv
import multiprocessing
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from cotrain.bench import Settings, measure_case

PAIRS = ("mobilenet_v2+mit_b1", "resnet50+mit_b2")
# name -> (dtype, channels_last, compile)
PRECISIONS = {"fp32": ("fp32", False, False), "bf16": ("bf16", False, False),
              "bf16_cl": ("bf16", True, False), "bf16_cl_compile": ("bf16", True, True)}
STEP_CASES = ("vanilla_pair", "hfd_bsd")
COLUMNS = ("check", "pair", "precision", "case", "status", "seconds", "step_s", "peak_mem_mb", "images_per_s",
           "trials", "miou_cnn", "miou_vit", "note")
GOALS = (("bf16 / fp32 images/s", 1.5, ">="), ("HFD + BSD step / Vanilla step", 1.15, "<="),
         ("two trials per GPU / one, images/s", 1.5, ">="))
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Plan:
    """What the check runs and how long each kind of case may take (seconds)."""

    device: str = "cuda"
    size: int = 512
    batch: int = 4
    steps: int = 10
    warmup: int = 3
    pairs: tuple[str, ...] = PAIRS
    precisions: tuple[str, ...] = ("fp32", "bf16", "bf16_cl")
    compile_pair: str = PAIRS[0]
    trial_steps: int = 30  # training steps per epoch in the packing trials
    trial_dataset: str = "camvid"
    trial_preset: str = "paper"
    budget_s: float = 540.0
    # Per-case limits, measured on an H200: a step case took 19-43 s (a fresh process: torch/CUDA start-up,
    # cudnn autotuning, 13 steps), so 25 s cut most of them; the CUDA tests took 137 s (2026-11-27); packing
    # (Ray + Train start-up, 2 epochs of 30 steps) did not finish in 100 s, nor compile's hfd_bsd in 120 s
    # (2026-11-27), so both limits are doubled. A 10-minute slot no longer fits every check: pick with --only.
    case_s: dict = field(default_factory=lambda: {"cuda_tests": 150, "step": 60, "packing": 200, "trial": 150,
                                                  "compile": 240})


QUICK = dict(device="cpu", size=64, batch=2, steps=2, warmup=1, pairs=("mobilenet_v2+mit_b0",),
             precisions=("fp32", "bf16_cl"), compile_pair="", trial_steps=2, trial_dataset="builtin",
             trial_preset="smoke", budget_s=900.0,  # a shared 2-core CPU: generous limits
             case_s={"cuda_tests": 300, "step": 120, "packing": 300, "trial": 300, "compile": 300})


@dataclass(frozen=True)
class Case:
    """One guarded measurement: ``fn(*args)`` in a fresh process, limited to ``limit_s``."""

    check: str
    label: dict
    limit_s: float
    fn: Callable
    args: tuple


# ----------------------------------------------------------------------------- the cases


def step_settings(plan: Plan, pair: str, precision: str) -> Settings:
    dtype, channels_last, compile_ = PRECISIONS[precision]
    return Settings(pair=pair, size=plan.size, batch=plan.batch, steps=plan.steps, warmup=plan.warmup,
                    repeats=1, device=plan.device, dtype=dtype, compile=compile_, channels_last=channels_last)


def measure_step(settings: Settings, case: str) -> dict:
    """``cotrain.bench.measure_case`` summarised: median step, peak memory, images/s."""
    result = measure_case(settings, case)
    step = statistics.median(result["times"])
    return {"step_s": step, "peak_mem_mb": result["peak_mem_mb"], "images_per_s": settings.batch / step}


def run_cuda_tests() -> dict:
    """The CUDA path's tests (they skip without a GPU); the pytest summary becomes the note."""
    # -n 0: one process (one CUDA context), not the suite's two xdist workers.
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
                           "tests/engine/test_gpu_path.py"], cwd=REPO, capture_output=True, text=True)
    summary = (done.stdout.strip().splitlines() or [""])[-1]
    if done.returncode != 0:
        raise RuntimeError(summary or done.stderr.strip().splitlines()[-1])
    return {"note": summary}


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


def tune_trials(cfg, trials: int, gpus_per_trial: float, cpus_per_trial: float) -> dict:
    """``trials`` copies of ``cfg`` (seeds 0..n-1) in one Tune experiment through TorchTrainer.

    images_per_s: the sum over trials of the last epoch's training images/s (the trials run
    side by side when their GPU shares fit one GPU).
    """
    from ray import tune

    from cotrain.cli import preflight
    from cotrain.launch import Resources, ray_session, run_experiment
    preflight(cfg)
    space = {**cfg.to_dict(), "seed": tune.grid_search(list(range(trials)))}
    resources = Resources(cpus_per_worker=cpus_per_trial, gpus_per_worker=gpus_per_trial, max_failures=0)
    with tempfile.TemporaryDirectory() as storage, ray_session(quiet=True):
        start = time.perf_counter()
        grid = run_experiment(space, name=cfg.name, storage=storage, resources=resources, verbose=0)
        wall = time.perf_counter() - start
    errors = [str(r.error).splitlines()[0] for r in grid if r.error]
    if errors:
        raise RuntimeError(errors[0])
    metrics = [r.metrics for r in grid]
    rate = sum(_train_images(cfg, m) / m["epoch_time_s"] for m in metrics)
    return {"images_per_s": rate, "trials": trials, "note": f"wall {wall:.0f} s",
            "miou_cnn": statistics.mean(m["miou_cnn"] for m in metrics),
            "miou_vit": statistics.mean(m["miou_vit"] for m in metrics)}


def _train_images(cfg, metrics: dict) -> int:
    from cotrain.data import get_dataset
    steps = len(get_dataset(cfg.dataset, cfg.data_root, "train")) // cfg.batch_size
    return min(steps, cfg.max_train_steps or steps) * cfg.batch_size


def plan_cases(plan: Plan, camvid_root: str | None) -> list[Case]:
    """Every case in run order (most wanted first); labels name what each row measures."""
    limits = plan.case_s
    cases = [Case("cuda_tests", {}, limits["cuda_tests"], run_cuda_tests, ())]
    for pair in plan.pairs:
        for precision in plan.precisions:
            for case in STEP_CASES:
                cases.append(Case("step", {"pair": pair, "precision": precision, "case": case}, limits["step"],
                                  measure_step, (step_settings(plan, pair, precision), case)))
    from cotrain.launch import local_cpu_share
    cpus = local_cpu_share(1)
    packing = trial_config(plan, "builtin", "cpu", None, plan.trial_steps, epochs=2)
    for trials, share in ((1, 1.0), (2, 0.5)):
        gpus = share if plan.device == "cuda" else 0.0
        cases.append(Case("packing", {"pair": plan.pairs[0], "case": f"{trials} trial(s), {share:g} GPU each"},
                          limits["packing"], tune_trials, (packing, trials, gpus, cpus * share)))
    root = camvid_root if plan.trial_dataset == "camvid" else None
    if plan.trial_dataset != "camvid" or camvid_root:
        trial = trial_config(plan, plan.trial_dataset, plan.trial_preset, root, None, epochs=1)
        label = {"pair": plan.pairs[0], "case": f"{plan.trial_dataset} {plan.trial_preset}, 1 epoch"}
        cases.append(Case("trial", label,
                          limits["trial"], tune_trials, (trial, 1, 1.0 if plan.device == "cuda" else 0.0, cpus)))
    if plan.compile_pair:
        for case in STEP_CASES[::-1]:
            cases.append(Case("compile", {"pair": plan.compile_pair, "precision": "bf16_cl_compile", "case": case},
                              limits["compile"], measure_step,
                              (step_settings(plan, plan.compile_pair, "bf16_cl_compile"), case)))
    return cases


# ----------------------------------------------------------------------------- running them


def run_guarded(case: Case, limit_s: float) -> dict:
    """``case`` in a fresh spawned process; its row, with status ok, failed or timeout."""
    row = {"check": case.check, **case.label}
    start = time.perf_counter()
    pool = multiprocessing.get_context("spawn").Pool(1)
    try:
        row.update(pool.apply_async(case.fn, case.args).get(timeout=limit_s), status="ok")
    except multiprocessing.TimeoutError:
        row.update(status="timeout", note=f"over its {limit_s:.0f} s limit")
    except Exception as exc:  # any failure is this case's result, not the check's end
        row.update(status="failed", note=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}")
    finally:
        pool.terminate()  # SIGTERM: a Ray session inside shuts down (launch.ray_session)
        pool.join()
    row["seconds"] = time.perf_counter() - start
    return row


def run_check(cases: Sequence[Case], budget_s: float, on_row: Callable[[list[dict]], None] = lambda rows: None
              ) -> list[dict]:
    """Every case within ``budget_s`` overall; a case that cannot start in time is ``skipped``.

    ``on_row(rows so far)`` after each case (the command line prints it and rewrites the CSV, so
    a check cut short still leaves its rows)."""
    deadline = time.perf_counter() + budget_s
    rows = []
    for case in cases:
        left = deadline - time.perf_counter()
        if left < min(case.limit_s, 10):
            rows.append({"check": case.check, **case.label, "status": "skipped", "note": "out of time budget"})
        else:
            rows.append(run_guarded(case, min(case.limit_s, left)))
        on_row(rows)
    return rows


def goals(rows: list[dict]) -> list[dict]:
    """The issue's three goals, each as measured ratio per pair (rows that exist only)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    steps = {(r["pair"], r["precision"], r["case"]): r for r in ok if r["check"] == "step"}
    out = []
    for pair in dict.fromkeys(r["pair"] for r in steps.values()):
        fp32, bf16 = steps.get((pair, "fp32", "hfd_bsd")), steps.get((pair, "bf16_cl", "hfd_bsd"))
        if fp32 and bf16:
            out.append(_goal(0, pair + " (bf16 + channels_last)", bf16["images_per_s"] / fp32["images_per_s"]))
        for precision in ("bf16_cl", "fp32"):
            vanilla, ours = steps.get((pair, precision, "vanilla_pair")), steps.get((pair, precision, "hfd_bsd"))
            if vanilla and ours:
                out.append(_goal(1, f"{pair} ({precision})", ours["step_s"] / vanilla["step_s"]))
                break
    packing = {r["trials"]: r for r in ok if r["check"] == "packing"}
    if 1 in packing and 2 in packing:
        out.append(_goal(2, packing[1]["pair"], packing[2]["images_per_s"] / packing[1]["images_per_s"]))
    return out


def _goal(index: int, what: str, ratio: float) -> dict:
    name, target, sense = GOALS[index]
    met = ratio >= target if sense == ">=" else ratio <= target
    return {"goal": name, "on": what, "measured": round(ratio, 3), "target": f"{sense} {target}",
            "met": "yes" if met else "no"}


# ----------------------------------------------------------------------------- output


def format_row(row: dict) -> str:
    what = " ".join(str(row[k]) for k in ("pair", "precision", "case") if row.get(k))
    numbers = "  ".join(f"{k} {row[k]:.4g}" for k in ("step_s", "peak_mem_mb", "images_per_s", "miou_cnn", "miou_vit")
                        if isinstance(row.get(k), float))
    took = f"{row['seconds']:.0f} s" if "seconds" in row else "-"
    return f"  {row['check']:<10} {row['status']:<8} {took:>5}  {what}  {numbers}  {row.get('note', '')}".rstrip()


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


def device_name(device: str) -> str:
    import torch
    if device == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({multiprocessing.cpu_count()} cores)"


# ----------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    from cotrain.cli import OneLineParser
    parser = OneLineParser(prog="python -m cotrain.bench_gpu", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="list the cases and their time limits, run nothing")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, builtin data: every code path, fast")
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None, help="default: cuda (--quick: cpu)")
    parser.add_argument("--camvid-root", default=None, help="CamVid (SegNet layout) for the 1-epoch trial")
    parser.add_argument("--budget-s", type=float, default=None, help="overall time limit (default 540)")
    parser.add_argument("--only", nargs="+", choices=["cuda_tests", "step", "packing", "trial", "compile"],
                        help="run only these checks")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.csv"), help="CSV file to write")
    return parser


def plan_from_args(args: argparse.Namespace) -> Plan:
    plan = Plan(**QUICK) if args.quick else Plan()
    if args.device:
        plan = replace(plan, device=args.device)
    if args.budget_s is not None:
        if args.budget_s <= 0:
            from cotrain.cli import fail
            fail(f"--budget-s {args.budget_s:g} is invalid: must be > 0")
        plan = replace(plan, budget_s=args.budget_s)
    return plan


def main(argv: Sequence[str] | None = None) -> int:
    from cotrain import bench_gpu  # the importable module, so spawned processes find its functions
    from cotrain.cli import fail
    args = build_parser().parse_args(argv)
    plan = bench_gpu.plan_from_args(args)
    if args.camvid_root and not Path(args.camvid_root).is_dir():
        fail(f"--camvid-root {args.camvid_root} is invalid: not a folder")
    cases = [c for c in bench_gpu.plan_cases(plan, args.camvid_root) if not args.only or c.check in args.only]
    if args.dry_run:
        return print_plan(plan, cases, args.camvid_root)
    if plan.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            fail("no CUDA device: run on a GPU machine, or use --dry-run / --quick --device cpu")
    name = device_name(plan.device)
    print(f"GPU check on {name}: {len(cases)} cases, at most {plan.budget_s:.0f} s", flush=True)

    def on_row(rows: list[dict]) -> None:
        print(format_row(rows[-1]), flush=True)
        write_csv(rows, args.out, name)

    rows = bench_gpu.run_check(cases, plan.budget_s, on_row)
    print("\n" + markdown_table(rows, [c for c in COLUMNS if any(r.get(c) not in (None, "") for r in rows)]))
    met = goals(rows)
    if met:
        print("\n" + markdown_table(met, ["goal", "on", "measured", "target", "met"]))
    print(f"\n{name}; wrote {args.out}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


def print_plan(plan: Plan, cases: Sequence[Case], camvid_root: str | None) -> int:
    print(f"would run {len(cases)} cases on {plan.device}, at most {plan.budget_s:.0f} s overall "
          f"({plan.size}x{plan.size}, batch {plan.batch}, {plan.steps} timed steps after {plan.warmup}):")
    for case in cases:
        what = " ".join(str(case.label[k]) for k in ("pair", "precision", "case") if k in case.label)
        print(f"  {case.check:<10} limit {case.limit_s:>4.0f} s  {what}")
    if plan.trial_dataset == "camvid" and not camvid_root:
        print("  (trial: skipped, no --camvid-root)")
    print(f"limits add up to {sum(c.limit_s for c in cases):.0f} s; cases that do not fit the budget are skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
