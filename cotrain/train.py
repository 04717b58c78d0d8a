"""``python -m cotrain.train``: one co-training run (a one-trial Ray Tune experiment driving a TorchTrainer).

Examples:
    python -m cotrain.train                                # built-in data, cpu preset, HFD + BSD
    python -m cotrain.train --dataset voc --data-root ~/data/VOCdevkit --preset paper
    python -m cotrain.train --config my.yaml --alpha 0.5 --no-hfd
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from cotrain.cli import OneLineParser, add_mlflow_flag, check_new_or_resume, check_storage, default_name, guarded, preflight
from cotrain.config import ConfigError, TrainConfig, add_config_flags, config_from_args


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
    if args.resume and not cfg.name:
        raise ConfigError("--resume needs --name NAME of the run to resume")
    cfg = cfg.replace(name=cfg.name or default_name(f"train-{cfg.method}"))
    check_storage(cfg.out)
    if not args.direct:
        check_new_or_resume(cfg.out, cfg.name, args.resume)
    preflight(cfg)
    metrics = _run_direct(cfg) if args.direct else _run_on_ray(cfg, args)
    _print_summary(cfg, metrics)
    return 0


def _write_resolved_config(cfg: TrainConfig) -> None:
    import yaml
    if "://" not in cfg.out:
        folder = Path(cfg.out, cfg.name)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def _run_direct(cfg: TrainConfig) -> dict:
    from cotrain.engine.loop import fit
    _write_resolved_config(cfg)
    folder = Path(cfg.out, cfg.name)
    lines = (folder / "metrics.jsonl").open("a")
    last: dict = {}

    def report(metrics: dict, checkpoint: Optional[str]) -> None:
        last.update(metrics)
        lines.write(json.dumps(metrics) + "\n")
        lines.flush()
        if checkpoint:
            import shutil
            shutil.copytree(checkpoint, folder / "checkpoint", dirs_exist_ok=True)

    fit(cfg, report)
    return last


def _run_on_ray(cfg: TrainConfig, args: argparse.Namespace) -> dict:
    from cotrain.launch import Resources, absolute_storage, local_cpu_share, mlflow_callback, ray_session, run_experiment
    gpus = args.gpus_per_worker if args.gpus_per_worker is not None else float(_cuda_available())
    cpus = args.cpus_per_worker or local_cpu_share(cfg.workers)
    resources = Resources(workers=cfg.workers, cpus_per_worker=cpus, gpus_per_worker=gpus)
    storage = absolute_storage(cfg.out)
    callbacks = [mlflow_callback(args.mlflow, storage, cfg.name)] if args.mlflow is not None else None
    with ray_session(cluster=args.cluster, resources=resources):
        _write_resolved_config(cfg)  # once Ray answered: a bad --cluster leaves no run folder
        grid = run_experiment(cfg.to_dict(), name=cfg.name, storage=storage, resources=resources,
                              resume=args.resume, callbacks=callbacks)
    result = grid[0]
    if result.error:
        raise SystemExit(f"run failed: {result.error}")
    return result.metrics or {}


def _cuda_available() -> bool:
    import torch
    return torch.cuda.is_available()


def _print_summary(cfg: TrainConfig, metrics: dict) -> None:
    print(f"\n{cfg.name}: {cfg.cnn} + {cfg.vit}, method={cfg.method}, {cfg.epochs} epochs on {cfg.dataset}")
    print(f"  CNN ({cfg.cnn}) mIoU: {metrics.get('miou_cnn', float('nan')):.2f}")
    print(f"  ViT ({cfg.vit}) mIoU: {metrics.get('miou_vit', float('nan')):.2f}   [{metrics.get('eval_split', '?')}, {metrics.get('eval_protocol', '?')}]")
    print(f"  results: {Path(cfg.out, cfg.name)}")


if __name__ == "__main__":
    sys.exit(main())
