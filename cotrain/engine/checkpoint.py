"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)`` (``cotrain.models.checkpoint``)."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch

from cotrain.models.checkpoint import CHECKPOINT_FILE, load_state, student_from_state

__all__ = ["CHECKPOINT_FILE", "SCRATCH_DIR", "atomic_copy", "atomic_torch_save",
           "atomic_write_text", "load_pair_from_checkpoint", "load_state", "naming", "remove_stale_scratch",
           "remove_stale_temps", "scratch_folder"]

SCRATCH_DIR = ".checkpoint-tmp"  # inside a run's folder: where each epoch's checkpoint is written before its copy


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Save to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    _atomic_write(Path(path), lambda handle: torch.save(obj, handle))


def atomic_copy(source: Path, path: Path) -> None:
    """Copy ``source`` to ``path`` the same way: ``path`` is the old file or the whole new one."""
    def copy(handle) -> None:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, handle, 1 << 20)
    _atomic_write(Path(path), copy)


def atomic_write_text(text: str, path: Path) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, as the checkpoints are written."""
    _atomic_write(Path(path), lambda handle: handle.write(text.encode("utf-8")))


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    with naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())  # the data is on disk before the rename makes it visible
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@contextmanager
def naming(path: Path) -> Iterator[None]:
    """An ``OSError`` raised while writing ``path`` names it (a failed ``write()`` carries no file name, and a
    temporary file's name means nothing to the user)."""
    try:
        yield
    except OSError as exc:
        if exc.errno is None or exc.filename == str(path):
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


@contextmanager
def scratch_folder(root: Optional[Path]) -> Iterator[str]:
    """A new empty folder for one checkpoint, removed after use: under ``root`` (a run's ``SCRATCH_DIR``) when
    given, so that a save killed half-way leaves its files in the run's folder (``remove_stale_scratch`` deletes
    them at the next start) and never in ``$TMPDIR``; else in ``$TMPDIR``."""
    if root is not None:
        with naming(root):
            root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix="epoch-") as folder:
        yield folder


def remove_stale_scratch(root: Path) -> None:
    """Delete what killed saves left in ``root`` (a run's ``SCRATCH_DIR``); call before the run saves again."""
    shutil.rmtree(root, ignore_errors=True)


def remove_stale_temps(folder: Path) -> None:
    """Delete temporary files a killed writer left in ``folder`` (SIGKILL skips every cleanup)."""
    for stale in Path(folder).glob(".*.tmp"):
        stale.unlink(missing_ok=True)


def load_pair_from_checkpoint(path: Path, device: str = "cpu"):
    """Rebuild the StudentPair a checkpoint was saved from. Returns (pair in eval mode, config dict)."""
    from cotrain.config import TrainConfig
    from cotrain.methods import NoOptions, get_method
    from cotrain.pair import StudentPair

    state = load_state(path)
    TrainConfig.from_dict(state["config"])  # a saved config that no longer validates is refused
    # Predicting needs only the students; the method's own parts (Γs, offline teachers) are skipped.
    cnn, vit = student_from_state(state, "cnn"), student_from_state(state, "vit")
    pair = StudentPair(cnn, vit, get_method("vanilla")(cnn, vit, NoOptions()), state["num_classes"])
    return pair.to(device).eval(), state["config"]
