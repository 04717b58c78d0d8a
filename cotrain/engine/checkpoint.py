"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

CHECKPOINT_FILE = "checkpoint.pt"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or does not fit the run."""


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Save to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    _atomic_write(Path(path), lambda handle: torch.save(obj, handle))


def atomic_copy(source: Path, path: Path) -> None:
    """Copy ``source`` to ``path`` the same way: ``path`` is the old file or the whole new one."""
    def copy(handle) -> None:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, handle, 1 << 20)
    _atomic_write(Path(path), copy)


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
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


def remove_stale_temps(folder: Path) -> None:
    """Delete temporary files a killed writer left in ``folder`` (SIGKILL skips every cleanup)."""
    for stale in Path(folder).glob(".*.tmp"):
        stale.unlink(missing_ok=True)


def load_state(path: Path) -> dict[str, Any]:
    """Read a checkpoint file safely (no pickle beyond tensors and plain containers)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, wrong format...
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}); "
                              "delete it to restart from the previous one") from exc
    if not isinstance(state, dict) or "pair" not in state or "config" not in state:
        raise CheckpointError(f"checkpoint {path} is not a cotrain checkpoint (no 'pair'/'config' entries)")
    return state


def load_pair_from_checkpoint(path: Path, device: str = "cpu"):
    """Rebuild the StudentPair a checkpoint was saved from. Returns (pair in eval mode, config dict)."""
    from cotrain.config import TrainConfig
    from cotrain.models.pair import build_pair

    state = load_state(path)
    cfg = TrainConfig.from_dict(state["config"])
    # Predicting needs only the students; the method's own parts (Γs, offline teachers) are skipped.
    pair = build_pair(cfg.cnn, cfg.vit, state["num_classes"], None, "vanilla",
                      aspp_rates=cfg.pair_options()["aspp_rates"])
    students = {k: v for k, v in state["pair"].items() if k.startswith(("cnn.", "vit."))}
    pair.load_state_dict(students)
    return pair.to(device).eval(), state["config"]
