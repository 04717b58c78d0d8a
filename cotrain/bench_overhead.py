"""Per-trial overhead of Ray Tune + TorchTrainer against the same loop called directly.

    python -m cotrain.bench_overhead                      # a short trial and a ~5-minute trial, cpu preset
    python -m cotrain.bench_overhead --short-epochs 1 --long-epochs 0   # short only

Both runs use the same config, seed and thread count; the table gives wall seconds,
the difference, and the overhead as a share of the Ray trial's wall time.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Optional, Sequence

from cotrain.config import TrainConfig, resolve


def time_direct(cfg: TrainConfig, threads: int) -> float:
    """Wall seconds of ``fit`` in this process (data built, trained, evaluated, checkpointed)."""
    import torch

    from cotrain.engine.loop import fit
    torch.set_num_threads(threads)
    start = time.perf_counter()
    fit(cfg, lambda metrics, folder: None, log=lambda line: None)
    return time.perf_counter() - start


def time_on_ray(cfg: TrainConfig, storage: str, cpus: float) -> tuple[float, float]:
    """(ray.init seconds, wall seconds of the one-trial Tune experiment driving a TorchTrainer)."""
    from cotrain.launch import Resources, ray_session, run_experiment
    start = time.perf_counter()
    with ray_session(quiet=True):
        ready = time.perf_counter()
        run_experiment(cfg.to_dict(), name=cfg.name, storage=storage, verbose=0,
                       resources=Resources(cpus_per_worker=cpus))
        done = time.perf_counter()
    return ready - start, done - ready


def measure(label: str, cfg: TrainConfig, storage: str) -> dict:
    from cotrain.launch import local_cpu_share
    cpus = local_cpu_share(1)
    direct = time_direct(cfg, threads=max(1, round(cpus)))
    init, on_ray = time_on_ray(cfg, storage, cpus)
    return {"trial": label, "epochs": cfg.epochs, "direct_s": direct, "ray_init_s": init, "tune_torchtrainer_s": on_ray,
            "overhead_s": on_ray - direct, "overhead_pct": 100 * (on_ray - direct) / on_ray}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--short-epochs", type=int, default=1)
    parser.add_argument("--long-epochs", type=int, default=7, help="about 5 minutes on 2 CPU cores (0: skip)")
    args = parser.parse_args(argv)
    import pandas as pd
    rows = []
    with tempfile.TemporaryDirectory() as storage:
        for label, epochs in (("short", args.short_epochs), ("long", args.long_epochs)):
            if epochs > 0:
                cfg = resolve(args.preset, overrides={"epochs": epochs, "name": f"overhead-{label}", "out": storage})
                rows.append(measure(label, cfg, storage))
                print(pd.DataFrame(rows[-1:]).to_string(index=False, float_format="%.1f"), flush=True)
    print("\n" + pd.DataFrame(rows).to_markdown(index=False, floatfmt=".1f"))
    print(f"\n{os.cpu_count()} CPUs; direct = fit() in-process, same threads as the Ray worker")
    return 0


if __name__ == "__main__":
    sys.exit(main())
