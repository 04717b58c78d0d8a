"""Shared command-line plumbing: one-line errors with exit code 2, run names, preflight checks."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, NoReturn, Optional

from cotrain.config import ConfigError, TrainConfig

EXIT_USAGE = 2


def fail(message: str) -> NoReturn:
    """Print one line to stderr and exit with code 2 (bad input: nothing was started)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr (no usage dump), exit code 2."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        fail(f"{message} (see {self.prog} --help)")


def guarded(main: Callable[[], int]) -> int:
    """Run ``main``; every known bad-input error becomes one line and exit code 2."""
    from cotrain.data import DataError
    from cotrain.engine.checkpoint import CheckpointError
    from cotrain.launch import ClusterError

    try:
        return main()
    except (ConfigError, DataError, CheckpointError, ClusterError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        print("interrupted; resume with --resume", file=sys.stderr)
        return 130


def add_mlflow_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mlflow", nargs="?", const="", default=None, metavar="URI",
                        help="also log every trial to MLflow (default URI: sqlite:///<storage>/mlflow.db)")


def default_name(prefix: str) -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_storage(storage: str) -> None:
    """A local storage folder must be creatable and writable before Ray starts."""
    if "://" in storage:
        return
    path = Path(storage).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"storage path {storage} is not writable ({exc.strerror}); pass --storage/--out "
                          "with a writable folder") from exc


def check_new_or_resume(storage: str, name: Optional[str], resume: bool) -> None:
    """``--resume`` needs an existing experiment ``name``; a new run must not reuse one."""
    from cotrain.launch import absolute_storage, experiment_exists
    if resume and not name:
        raise ConfigError("--resume needs --name NAME of the experiment to resume")
    exists = experiment_exists(absolute_storage(storage), name or "")
    if resume and not exists and "://" not in storage:
        raise ConfigError(f"--resume: no experiment {name!r} under {storage}")
    if not resume and exists:
        raise ConfigError(f"experiment {name!r} already exists under {storage}; "
                          "pass --resume to continue it or a new --name")


def preflight(cfg: TrainConfig) -> None:
    """Check data, classes, weights and teacher checkpoints before any worker starts."""
    from cotrain.engine.checkpoint import load_state
    from cotrain.engine.data import build_eval_data, build_train_data

    _, spec = build_train_data(cfg)
    build_eval_data(cfg, spec)
    if cfg.weights not in (None, "none", "imagenet") and not Path(cfg.weights).is_file():
        raise ConfigError(f"weights={cfg.weights!r} is invalid: not a file; allowed: imagenet, none, a state-dict path")
    for key in ("teacher_cnn", "teacher_vit"):
        path = getattr(cfg, key)
        if path is not None:
            state = load_state(Path(path))
            if state["num_classes"] != spec.num_classes:
                raise ConfigError(f"{key}={path} has num_classes={state['num_classes']}, "
                                  f"dataset {spec.name!r} has {spec.num_classes}")
