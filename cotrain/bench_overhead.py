"""Per-trial start-up of Ray Tune + TorchTrainer, and what cuts it.

    python -m cotrain.bench_overhead                          # every variant, 3 one-epoch cpu-preset trials each
    python -m cotrain.bench_overhead --variants reuse --trials 2 --preset smoke

Each variant runs ``--trials`` trials one after another (one fits the machine at a time) in a Ray
session of its own. A trial's overhead is the variant's wall time per trial minus the same trial's
``fit`` called in this process (data built, trained, evaluated, checkpointed; median of two after a
warm-up call). The table gives it in seconds and as a share of a 5-minute trial (the goal: <= 5 %),
beside the parts of a trial's start-up that Ray does not add: a fresh process's imports, and
building the data and the pair in a fresh process (``cold``) or again in a warm one (``warm``: what
data built once per node could save at most). The machine's load average is printed with the numbers:
on a shared machine they are upper bounds. The launched variant's overhead is cached for the
sweeps' time estimate (``cotrain.estimate``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Optional

from cotrain.config import TrainConfig, resolve

REFERENCE_TRIAL_S = 300.0  # the goal's yardstick: overhead <= 5 % of a 5-minute trial


@dataclass(frozen=True)
class Variant:
    """One way of running the trials: trial-actor reuse, and environment that Ray's processes inherit."""

    reuse_actors: bool
    env: dict = field(default_factory=dict)
    what: str = ""


VARIANTS = {
    "no_reuse": Variant(False, {}, "a fresh trial actor per trial (the sweeps before issue #27; ASHA runs still)"),
    "reuse": Variant(True, {}, "trial actors reused between trials (launched: grids and searches without ASHA)"),
    "reuse_fast_poll": Variant(True, {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"},
                               "reuse + Ray Train's controller polling its workers every 0.5 s (default 2 s)"),
    "reuse_preload": Variant(True, {"RAY_preload_python_modules": "torch,cotrain.engine.loop"},
                             "reuse + Ray's idle worker processes import torch and the loop before they are needed"),
}
LAUNCHED = "reuse"  # what run_experiment does for a grid without a scheduler


def time_direct(cfg: TrainConfig, threads: int) -> float:
    """Wall seconds of ``fit`` in this process (data built, trained, evaluated, checkpointed)."""
    import torch

    from cotrain.engine.loop import fit
    torch.set_num_threads(threads)
    start = time.perf_counter()
    fit(cfg, lambda metrics, folder: None, log=lambda line: None)
    return time.perf_counter() - start


def time_build_warm(cfg: TrainConfig) -> float:
    """Seconds to build the data and the pair again in this (warm) process."""
    from cotrain.engine.loop import build_run
    start = time.perf_counter()
    build_run(cfg)
    return time.perf_counter() - start


def time_fresh_process(cfg: TrainConfig) -> dict[str, float]:
    """A fresh Python's import of torch and the loop, then its first (cold) build of the data and the pair."""
    code = ("import json, sys, time; t0 = time.perf_counter(); import torch; "
            "from cotrain.engine.loop import build_run; from cotrain.config import TrainConfig; "
            "t1 = time.perf_counter(); "
            "build_run(TrainConfig.from_dict(json.loads(sys.argv[1]))); "
            "print(json.dumps({'import_s': t1 - t0, 'build_cold_s': time.perf_counter() - t1}))")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(cfg.to_dict())], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextmanager
def environment(extra: dict[str, str]) -> Iterator[None]:
    """``os.environ`` plus ``extra`` (Ray's processes started meanwhile inherit it), restored afterwards."""
    saved = {key: os.environ.get(key) for key in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def time_variant(cfg: TrainConfig, variant: Variant, trials: int, storage: str, cpus: float) -> float:
    """Wall seconds of ``trials`` copies of ``cfg`` (seeds 0..n-1), one at a time, in one Tune experiment."""
    from ray import tune

    from cotrain.launch import Resources, ray_session, run_experiment
    space = {**cfg.to_dict(), "seed": tune.grid_search(list(range(trials)))}
    with environment(variant.env), ray_session(quiet=True):
        start = time.perf_counter()
        grid = run_experiment(space, name=f"{cfg.name}-{time.time_ns()}", storage=storage, verbose=0,
                              resources=Resources(cpus_per_worker=cpus), reuse_actors=variant.reuse_actors)
        wall = time.perf_counter() - start
    errors = [str(r.error).splitlines()[0] for r in grid if r.error]
    if errors:
        raise RuntimeError(f"a trial failed: {errors[0]}")
    return wall


def overhead_row(name: str, wall: float, trials: int, direct: float) -> dict:
    per_trial = wall / trials
    overhead = per_trial - direct
    return {"variant": name, "trials": trials, "wall_per_trial_s": per_trial, "direct_s": direct,
            "overhead_s": overhead, "pct_of_5min_trial": 100 * overhead / REFERENCE_TRIAL_S,
            "load_avg": os.getloadavg()[0], "what": VARIANTS[name].what if name in VARIANTS else ""}


def cache_startup(row: dict, device: str, path=None) -> None:
    """Record the launched variant's per-trial overhead for ``cotrain.estimate`` (``startup_seconds``)."""
    from cotrain.estimate import write_startup
    write_startup(device, row["overhead_s"], {"variant": row["variant"], "load_avg": round(row["load_avg"], 2)}, path)


def build_parser() -> argparse.ArgumentParser:
    from cotrain.cli import OneLineParser
    parser = OneLineParser(prog="python -m cotrain.bench_overhead", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu", choices=["cpu", "smoke"])
    parser.add_argument("--epochs", type=int, default=1, help="epochs per trial (default 1)")
    parser.add_argument("--trials", type=int, default=3, help="trials per variant, one after another (default 3)")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--no-cache", action="store_true", help="do not record the launched variant's overhead")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    from cotrain.cli import fail
    from cotrain.launch import local_cpu_share
    args = build_parser().parse_args(argv)
    if args.epochs < 1 or args.trials < 1:
        fail(f"--epochs {args.epochs} / --trials {args.trials} is invalid: both must be >= 1")
    import pandas as pd
    cpus = local_cpu_share(1)
    rows = []
    with tempfile.TemporaryDirectory() as storage:
        cfg = resolve(args.preset, overrides={"epochs": args.epochs, "name": "overhead", "out": storage,
                                              "device": "cpu"})
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the start", flush=True)
        fresh = time_fresh_process(cfg)
        direct = _direct(cfg, cpus)
        warm = time_build_warm(cfg)
        print(f"direct fit {direct:.1f} s; fresh process: imports {fresh['import_s']:.1f} s, data + pair "
              f"{fresh['build_cold_s']:.1f} s cold, {warm:.1f} s warm", flush=True)
        for name in args.variants:
            wall = time_variant(cfg, VARIANTS[name], args.trials, storage, cpus)
            rows.append(overhead_row(name, wall, args.trials, direct))
            print(pd.DataFrame(rows[-1:]).drop(columns="what").to_string(index=False, float_format="%.1f"), flush=True)
    print("\n" + pd.DataFrame(rows).to_markdown(index=False, floatfmt=".1f"))
    print(f"\n{os.cpu_count()} CPUs, {args.preset} preset, {args.epochs}-epoch trials; overhead = wall per trial - "
          f"fit() in-process ({direct:.1f} s); share of a {REFERENCE_TRIAL_S / 60:.0f}-minute trial. On a busy "
          "machine (load average above the CPU count) these are upper bounds.")
    launched = [r for r in rows if r["variant"] == LAUNCHED]
    if launched and not args.no_cache:
        cache_startup(launched[0], "cpu")
    return 0


def _direct(cfg: TrainConfig, cpus: float) -> float:
    """``fit`` in-process: a warm-up call (imports, caches), then the median of two."""
    threads = max(1, round(cpus))
    time_direct(cfg, threads)
    return statistics.median(time_direct(cfg, threads) for _ in range(2))


if __name__ == "__main__":
    sys.exit(main())
