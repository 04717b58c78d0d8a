"""``python -m cotrain.train``: one co-training run (a one-trial Ray Tune experiment driving a TorchTrainer).

Examples:
    python -m cotrain.train                                # built-in data, cpu preset, HFD + BSD
    python -m cotrain.train --dataset voc --data-root ~/data/VOCdevkit --preset paper
    python -m cotrain.train --config my.yaml --alpha 0.5 --no-hfd
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from cotrain.cli import (
    OneLineParser,
    add_mlflow_flag,
    check_new_or_resume,
    check_resume_named,
    check_storage,
    default_name,
    guarded,
    preflight,
    resumed_config,
    run_lock,
)
from cotrain.config import TrainConfig, add_config_flags, config_from_args
from cotrain.launch import RunInterrupted


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m cotrain.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_flags(parser)
    parser.add_argument("--cluster", action="store_true", help="connect to a running Ray cluster (RAY_ADDRESS or auto)")
    parser.add_argument("--gpus-per-worker", type=float, default=None, help="default: 1 if CUDA is present, else 0")
    parser.add_argument("--cpus-per-worker", type=float, default=None, help="default: all local CPUs / workers")
    parser.add_argument("--resume", action="store_true", help="resume the run called --name under --out")
    parser.add_argument("--direct", action="store_true", help="run the loop in this process, without Ray")
    add_mlflow_flag(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    check_resume_named(args.resume, cfg.name)
    cfg = resumed_config(args, cfg) if args.resume else cfg
    cfg = cfg.replace(name=cfg.name or default_name(f"train-{cfg.method}"))
    check_storage(cfg.out)
    preflight(cfg, local=not args.cluster)
    with run_lock(cfg.out, cfg.name):
        check_new_or_resume(cfg.out, cfg.name, args.resume, direct=args.direct)
        try:
            metrics = _run_direct(cfg, args.resume) if args.direct else _run_on_ray(cfg, args)
        except KeyboardInterrupt:
            raise RunInterrupted(cfg.name) from None
    _print_summary(cfg, metrics)
    return 0


def _write_resolved_config(cfg: TrainConfig) -> None:
    import yaml
    if "://" not in cfg.out:
        folder = Path(cfg.out, cfg.name)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def _run_direct(cfg: TrainConfig, resume: bool) -> dict:
    """The loop in this process; the run folder holds config.yaml, metrics.jsonl and checkpoint/."""
    from cotrain.engine.checkpoint import CHECKPOINT_FILE, atomic_copy, remove_stale_temps
    from cotrain.engine.loop import fit
    folder = Path(cfg.out, cfg.name)
    checkpoint = folder / "checkpoint"
    if not resume:
        _write_resolved_config(cfg)
    remove_stale_temps(checkpoint)
    history = MetricsFile(folder / "metrics.jsonl")

    def report(metrics: dict, saved: Optional[str]) -> None:
        history.record(metrics)  # first: killed before the copy, the resumed run replays this epoch's line
        if saved:
            atomic_copy(Path(saved, CHECKPOINT_FILE), checkpoint / CHECKPOINT_FILE)

    resume_from = str(checkpoint) if resume and (checkpoint / CHECKPOINT_FILE).is_file() else None
    return fit(cfg, report, resume_from=resume_from)


class MetricsFile:
    """``metrics.jsonl``: one line per epoch, rewritten atomically; a replayed epoch replaces its line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        text = path.read_text() if path.is_file() else ""
        self.lines = [json.loads(line) for line in text.splitlines() if line.strip()]

    def record(self, metrics: dict) -> None:
        metrics = {k: v for k, v in metrics.items() if k != "history"}  # the file keeps every epoch already
        self.lines = [m for m in self.lines if m.get("epoch", 0) < metrics.get("epoch", 0)] + [metrics]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(json.dumps(m) + "\n" for m in self.lines))
        os.replace(tmp, self.path)


def _run_on_ray(cfg: TrainConfig, args: argparse.Namespace) -> dict:
    from cotrain.launch import (
        Resources,
        absolute_storage,
        local_cpu_share,
        mlflow_callback,
        ray_session,
        run_experiment,
        trial_error,
    )
    gpus = args.gpus_per_worker if args.gpus_per_worker is not None else float(_cuda_available())
    cpus = args.cpus_per_worker or local_cpu_share(cfg.workers)
    resources = Resources(workers=cfg.workers, cpus_per_worker=cpus, gpus_per_worker=gpus)
    storage = absolute_storage(cfg.out)
    callbacks = [mlflow_callback(args.mlflow, storage, cfg.name)] if args.mlflow is not None else None
    with ray_session(cluster=args.cluster, resources=resources):
        if not args.resume:
            _write_resolved_config(cfg)  # once Ray answered: a bad --cluster leaves no run folder
        grid = run_experiment(cfg.to_dict(), name=cfg.name, storage=storage, resources=resources,
                              resume=args.resume, callbacks=callbacks)
    result = grid[0]
    if result.error:
        raise trial_error(result)
    return result.metrics or {}


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


def _print_summary(cfg: TrainConfig, metrics: dict) -> None:
    print(f"\n{cfg.name}: {cfg.cnn} + {cfg.vit}, method={cfg.method}, {cfg.epochs} epochs on {cfg.dataset}")
    print(f"  CNN ({cfg.cnn}) mIoU: {metrics.get('miou_cnn', float('nan')):.2f}")
    where = f"[{metrics.get('eval_split', '?')}, {metrics.get('eval_protocol', '?')}]"
    print(f"  ViT ({cfg.vit}) mIoU: {metrics.get('miou_vit', float('nan')):.2f}   {where}")
    print(f"  results: {Path(cfg.out, cfg.name)}")


if __name__ == "__main__":
    sys.exit(main())
