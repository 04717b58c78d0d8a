"""Shared command-line plumbing: one-line errors with exit code 2, run names, preflight checks."""
from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, NoReturn, Optional

from cotrain.config import ConfigError, TrainConfig, config_from_args, is_uri, load_yaml

#: Keys a resumed run may change: they cannot change its results (``out``/``name`` only locate it).
RESUMABLE_CHANGES = ("log_every", "out", "name")
LOCK_FILE = ".cotrain.lock"

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
    except KeyboardInterrupt as exc:
        print(str(exc) or "interrupted; resume with --resume --name NAME", file=sys.stderr)
        return 130


def add_mlflow_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mlflow", nargs="?", const="", default=None, metavar="URI",
                        help="also log every trial to MLflow (default URI: sqlite:///<storage>/mlflow.db)")


def default_name(prefix: str) -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_storage(storage: str) -> None:
    """A local storage folder must be creatable and writable before Ray starts."""
    if is_uri(storage):
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


def check_resume_named(resume: bool, name: Optional[str]) -> None:
    """``--resume`` continues one experiment: its name must be given (a default name is always new)."""
    if resume and not name:
        raise ConfigError("--resume needs --name NAME of the experiment to resume")


def check_new_or_resume(storage: str, name: Optional[str], resume: bool, direct: bool = False) -> None:
    """``--resume`` needs an existing run ``name`` started the same way (``--direct`` or Ray); a new
    run must not reuse one."""
    from cotrain.launch import absolute_storage, experiment_exists
    on_ray = experiment_exists(absolute_storage(storage), name or "")
    exists = on_ray or (not is_uri(storage) and Path(storage, name or "", "config.yaml").is_file())
    if resume and not exists and not is_uri(storage):
        raise ConfigError(f"--resume: no experiment {name!r} under {storage}")
    if not resume and exists:
        raise ConfigError(f"experiment {name!r} already exists under {storage}; "
                          "pass --resume to continue it or a new --name")
    if resume and exists and on_ray == direct:
        raise ConfigError(f"--resume: run {name!r} was started {'through Ray' if on_ray else 'with --direct'}; "
                          f"resume it {'without' if on_ray else 'with'} --direct")


def resumed_config(args: argparse.Namespace, cfg: TrainConfig) -> TrainConfig:
    """The saved config of the run being resumed, with the flags given now on top.

    Fails naming every key whose new value differs, unless it cannot change results.
    """
    saved_file = Path(cfg.out, cfg.name or "", "config.yaml")
    if is_uri(cfg.out) or not saved_file.is_file():
        return cfg  # nothing to compare with: check_new_or_resume reports a missing run
    saved = load_yaml(saved_file)
    resumed = config_from_args(args, base=saved)
    changed = [f"{key}={saved.get(key)!r} (now {value!r})" for key, value in resumed.to_dict().items()
               if key not in RESUMABLE_CHANGES and value != saved.get(key)]
    if changed:
        raise ConfigError(f"--resume: run {cfg.name!r} was started with {', '.join(changed)}; a resumed run keeps "
                          f"its config (only {', '.join(RESUMABLE_CHANGES)} may change)")
    return resumed


@contextmanager
def run_lock(storage: str, name: str) -> Iterator[None]:
    """Hold an exclusive lock on the run folder ``<storage>/<name>`` (local storage) while the run lasts.

    A second run with the same name fails at once; the lock dies with its process, even on SIGKILL.
    """
    import fcntl
    if is_uri(storage):
        yield
        return
    folder = Path(storage, name)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    handle = path.open("a")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"run {name!r} under {storage} is in use by another process; "
                              "wait for it or pick a new --name") from None
        yield
    finally:
        handle.close()
        if created and [p.name for p in folder.iterdir()] == [LOCK_FILE]:  # nothing started: leave no trace
            path.unlink(missing_ok=True)
            folder.rmdir()


def preflight(cfg: TrainConfig, local: bool = True) -> None:
    """Check device, data (every pair opens and its sizes match), classes, weights and teacher
    checkpoints before any worker starts. ``local``: the run's workers use this machine's devices."""
    from cotrain.data.checks import require_matching_sizes
    from cotrain.engine.checkpoint import load_state
    from cotrain.engine.data import build_eval_data, build_train_data

    if local:
        check_device(cfg)
    train_set, spec = build_train_data(cfg)
    val_set, _ = build_eval_data(cfg, spec)
    for dataset in (train_set, val_set):
        require_matching_sizes(dataset.files, f"{spec.name} {dataset.split}")
    if cfg.weights == "imagenet" and local:
        from cotrain.models.weights import cache_dir, weights_file
        for encoder in (cfg.cnn, cfg.vit):
            weights_file(encoder, cache_dir())
    if cfg.weights not in (None, "none", "imagenet") and not Path(cfg.weights).is_file():
        raise ConfigError(f"weights={cfg.weights!r} is invalid: not a file; allowed: imagenet, none, a state-dict path")
    for key in ("teacher_cnn", "teacher_vit"):
        path = getattr(cfg, key)
        if path is not None:
            state = load_state(Path(path))
            if state["num_classes"] != spec.num_classes:
                raise ConfigError(f"{key}={path} has num_classes={state['num_classes']}, "
                                  f"dataset {spec.name!r} has {spec.num_classes}")


def check_device(cfg: TrainConfig) -> None:
    import torch
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' is invalid: no CUDA device is available here; allowed: auto, cpu")
