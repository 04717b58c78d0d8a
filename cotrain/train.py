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

from cotrain.cli import (
    OneLineParser,
    add_mlflow_flag,
    check_new_or_resume,
    check_resume_named,
    check_storage,
    default_name,
    disk_full_named,
    guarded,
    preflight,
    resumed_config,
    run_lock,
)
from cotrain.config import TrainConfig, add_config_flags, config_from_args
from cotrain.launch import RunInterrupted
from cotrain.portable import pin_this_process, rerun_pinned, threads
from cotrain.provenance import KEY as PROVENANCE
from cotrain.provenance import first_report_carries


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
    return guarded(lambda: _run(args, list(sys.argv[1:] if argv is None else argv)))


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    cfg = config_from_args(args)
    check_resume_named(args.resume, cfg.name)
    cfg = resumed_config(args, cfg) if args.resume else cfg
    cfg = cfg.replace(name=cfg.name or default_name(f"train-{cfg.method}"))
    if cfg.portable and args.direct and not pin_this_process():  # this process has computed already
        return rerun_pinned([*argv, "--name", cfg.name])
    check_storage(cfg.out)
    preflight(cfg, local=not args.cluster)
    with run_lock(cfg.out, cfg.name), disk_full_named(cfg.out, cfg.name):
        check_new_or_resume(cfg.out, cfg.name, args.resume, direct=args.direct)
        try:
            metrics = _run_direct(cfg, args.resume) if args.direct else _run_on_ray(cfg, args)
        except KeyboardInterrupt:
            raise RunInterrupted(cfg.name) from None
    _print_summary(cfg, metrics)
    return 0


def _write_resolved_config(cfg: TrainConfig) -> None:
    import yaml

    from cotrain.engine.checkpoint import atomic_write_text
    if "://" not in cfg.out:  # atomic: a full disk leaves no half config.yaml that a resume would read
        atomic_write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), Path(cfg.out, cfg.name, "config.yaml"))


def _run_direct(cfg: TrainConfig, resume: bool) -> dict:
    """The loop in this process; the run folder holds config.yaml, provenance.json, metrics.jsonl and checkpoint/."""
    import torch

    from cotrain.engine.checkpoint import CHECKPOINT_FILE, SCRATCH_DIR, atomic_copy, remove_stale_temps
    from cotrain.engine.loop import fit
    folder = Path(cfg.out, cfg.name)
    checkpoint = folder / "checkpoint"
    if not resume:
        _write_resolved_config(cfg)
    remove_stale_temps(checkpoint)
    remove_stale_temps(folder)  # metrics.jsonl's and config.yaml's
    history = MetricsFile(folder / "metrics.jsonl")

    def record(metrics: dict, saved: Optional[str]) -> None:
        if PROVENANCE in metrics:
            add_start(folder / f"{PROVENANCE}.json", metrics.pop(PROVENANCE))
        history.record(metrics)  # first: killed before the copy, the resumed run replays this epoch's line
        if saved:
            atomic_copy(Path(saved, CHECKPOINT_FILE), checkpoint / CHECKPOINT_FILE)

    resume_from = str(checkpoint) if resume and (checkpoint / CHECKPOINT_FILE).is_file() else None
    report = first_report_carries(record, cfg)
    before = torch.get_num_threads()
    torch.set_num_threads(threads(cfg.cpu_threads, cfg.portable, before))
    try:
        return fit(cfg, report, resume_from=resume_from, scratch=folder / SCRATCH_DIR)
    finally:
        torch.set_num_threads(before)  # this process may go on (in-process callers)


def add_start(path: Path, provenance: str) -> None:
    """``provenance.json``: a list with one provenance per start of the run (a resume adds one)."""
    from cotrain.engine.checkpoint import atomic_write_text
    starts = json.loads(path.read_text()) if path.is_file() else []
    atomic_write_text(json.dumps([*starts, json.loads(provenance)], indent=1) + "\n", path)


class MetricsFile:
    """``metrics.jsonl``: one line per epoch, rewritten atomically; a replayed epoch replaces its line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        text = path.read_text() if path.is_file() else ""
        self.lines = [json.loads(line) for line in text.splitlines() if line.strip()]

    def record(self, metrics: dict) -> None:
        metrics = {k: v for k, v in metrics.items() if k != "history"}  # the file keeps every epoch already
        self.lines = [m for m in self.lines if m.get("epoch", 0) < metrics.get("epoch", 0)] + [metrics]
        from cotrain.engine.checkpoint import atomic_write_text
        atomic_write_text("".join(json.dumps(m) + "\n" for m in self.lines), self.path)


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
