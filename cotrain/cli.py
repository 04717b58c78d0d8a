"""Shared command-line plumbing: one-line errors with exit code 2, run names, preflight checks."""
from __future__ import annotations

import argparse
import dataclasses
import errno
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, NoReturn, Optional

from cotrain.config import TrainConfig, config_from_args, is_uri, load_yaml
from cotrain.errors import CheckpointError, ClusterError, ConfigError, DataError, DiskFullError

#: Keys a resumed run may change: they cannot change its results (``out``/``name`` only locate it).
RESUMABLE_CHANGES = ("log_every", "out", "name", "plugins")
LOCK_FILE = ".cotrain.lock"

EXIT_USAGE = 2
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # no space left on the device; disk quota exceeded


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
    try:
        return main()
    except (ConfigError, DataError, CheckpointError, ClusterError, DiskFullError) as exc:
        fail(str(exc))
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        fail(disk_full_message(exc))
    except KeyboardInterrupt as exc:
        print(str(exc) or "interrupted; resume with --resume --name NAME", file=sys.stderr)
        return 130


def disk_full_message(exc: OSError, storage: Optional[str] = None, name: Optional[str] = None) -> str:
    """One line: the file that could not be written, and how to go on once there is space."""
    where = exc.filename or (f"under {storage}" if storage else "a file")
    started = bool(storage and name and not is_uri(storage)
                   and any(Path(storage, name, f).is_file() for f in ("config.yaml", "tuner.pkl")))
    then = (f"resume with the same command plus --resume --name {name}" if started
            else "run the same command again")
    return (f"no space left on the device writing {where} ({exc.strerror or 'errno ' + str(exc.errno)}); "
            f"free space there or pass another --out/--storage, then {then}")


@contextmanager
def disk_full_named(storage: str, name: str) -> Iterator[None]:
    """A full disk while run ``name`` writes under ``storage`` becomes a ``DiskFullError`` (one line, exit 2)
    that names the file and says how to continue the run."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        raise DiskFullError(disk_full_message(exc, storage, name)) from exc


def add_mlflow_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mlflow", nargs="?", const="", default=None, metavar="URI",
                        help="also log every trial to MLflow (default URI: sqlite:///<storage>/mlflow.db)")


def default_name(prefix: str) -> str:
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


STORAGE_PROBE_S = 20.0  # how long a remote --storage may take to answer the write probe


def check_storage(storage: str) -> None:
    """A local storage folder must be creatable and writable before Ray starts; a URI must answer in seconds."""
    if is_uri(storage):
        check_remote_storage(storage)
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


def check_remote_storage(storage: str, timeout: Optional[float] = None) -> None:
    """Write and delete a small file under a ``s3://``... storage (pyarrow, as Ray does) before Ray starts:
    a bucket that does not exist, missing credentials or no network fail now, in one line, instead of
    after Ray's own retries."""
    import threading

    from cotrain.launch import storage as storage_module
    timeout = STORAGE_PROBE_S if timeout is None else timeout
    outcome: list[BaseException] = []

    def probe() -> None:
        try:
            filesystem, path = storage_module.storage_filesystem(storage)
            probe_file = f"{path.rstrip('/')}/.write-test"
            with filesystem.open_output_stream(probe_file) as out:
                out.write(b"ok")
            filesystem.delete_file(probe_file)
        except BaseException as exc:  # pyarrow raises OSError or ArrowException subclasses
            outcome.append(exc)

    worker = threading.Thread(target=probe, daemon=True, name="storage-probe")
    worker.start()
    worker.join(timeout)
    advice = "check the bucket name, credentials and network, or pass a local --storage/--out folder"
    if worker.is_alive():
        raise ConfigError(f"storage {storage} did not answer within {timeout:g} s; {advice}")
    if outcome:
        reason = " ".join(str(outcome[0]).split()) or type(outcome[0]).__name__
        raise ConfigError(f"storage {storage} is not usable ({reason}); {advice}")


def check_resume_named(resume: bool, name: Optional[str]) -> None:
    """``--resume`` continues one experiment: its name must be given (a default name is always new)."""
    if resume and not name:
        raise ConfigError("--resume needs --name NAME of the experiment to resume")


def check_new_or_resume(storage: str, name: Optional[str], resume: bool, direct: bool = False) -> None:
    """``--resume`` needs an existing run ``name`` started the same way (``--direct`` or Ray); a new
    run must not reuse one."""
    from cotrain.launch import absolute_storage, experiment_exists
    # Under a URI nothing is looked up before the storage probe has answered: a resume is taken on trust.
    on_ray = not is_uri(storage) and experiment_exists(absolute_storage(storage), name or "")
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
    # A key added after the run was saved counts as its default (what the run ran with).
    saved = {**{f.name: f.default for f in dataclasses.fields(TrainConfig)}, **saved}
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

    if cfg.portable:  # before the checks below compute anything; Ray's workers inherit it
        from cotrain.portable import pin_driver
        pin_driver()
    if local:
        check_device(cfg)
    check_paper_voc(cfg)
    check_teachers(cfg)
    train_set, spec = build_train_data(cfg)
    val_set, _ = build_eval_data(cfg, spec)
    for dataset in (train_set, val_set):
        require_matching_sizes(dataset.files, f"{spec.name} {dataset.split}")
    if cfg.weights == "imagenet" and local:
        from cotrain.models.weights import cache_dir, weights_file
        for encoder in (cfg.cnn, cfg.vit):
            weights_file(encoder, cache_dir())
    if cfg.weights not in (None, "none", "imagenet"):
        check_weights_file(cfg, cfg.num_classes or spec.num_classes)
    if cfg.init_from is not None:
        from cotrain.models.checkpoint import check_init_source
        check_init_source(load_state(Path(cfg.init_from)), cfg.init_from, cfg.cnn, cfg.vit,
                          cfg.num_classes or spec.num_classes, cfg.aspp_rates)
    for key in ("teacher_cnn", "teacher_vit"):
        path = getattr(cfg, key)
        if path is not None:
            state = load_state(Path(path))
            if state["num_classes"] != spec.num_classes:
                raise ConfigError(f"{key}={path} has num_classes={state['num_classes']}, "
                                  f"dataset {spec.name!r} has {spec.num_classes}")


def check_weights_file(cfg: TrainConfig, num_classes: int) -> None:
    """``--weights FILE`` must load into both students now (a refused pickle, other keys), not in a worker."""
    from cotrain.models.students import build_student
    from cotrain.options import parse_rates
    if not Path(cfg.weights).is_file():
        raise ConfigError(f"weights={cfg.weights!r} is invalid: not a file; allowed: imagenet, none, a state-dict path")
    for kind in ("cnn", "vit"):
        try:
            build_student(kind, getattr(cfg, kind), num_classes, cfg.weights, parse_rates(cfg.aspp_rates))
        except ValueError as exc:
            raise ConfigError(f"weights={cfg.weights!r} is invalid for the {kind} student "
                              f"({getattr(cfg, kind)}): {exc}") from None


def check_paper_voc(cfg: TrainConfig) -> None:
    """``--preset paper`` on VOC needs trainaug (the paper's numbers are trained on its 10,582 images), unless
    ``allow_voc_train_only`` says that train.txt's 1,464 will do."""
    if cfg.preset != "paper" or cfg.dataset != "voc" or cfg.allow_voc_train_only or cfg.data_root is None:
        return
    from cotrain.data.voc import find_voc_root, has_trainaug
    if not has_trainaug(find_voc_root(Path(cfg.data_root))):
        raise ConfigError(f"preset=paper on voc needs trainaug (10,582 images), missing under {cfg.data_root}: build "
                          f"it with python -m cotrain.data prepare-sbd --sbd SBD_ROOT --voc {cfg.data_root}, or pass "
                          "--allow-voc-train-only to train on train.txt's 1,464 images")


def check_teachers(cfg: TrainConfig) -> None:
    """A method that distils from frozen Vanilla teachers (``needs_teachers``) must be given one."""
    from cotrain.methods import needs_teachers
    if needs_teachers(cfg.to_dict()) and cfg.teacher_cnn is None and cfg.teacher_vit is None:
        mode = f" (ifvd_mode={cfg.ifvd_mode})" if cfg.method == "ifvd" else ""
        raise ConfigError(f"method={cfg.method}{mode} needs teacher_cnn and/or teacher_vit: a Vanilla checkpoint of "
                          "the same pair (sweeps/methods.py hands them over from its Vanilla stage)"
                          + (", or use ifvd_mode=mutual" if mode else ""))


def check_device(cfg: TrainConfig) -> None:
    import torch
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' is invalid: no CUDA device is available here; allowed: auto, cpu")
