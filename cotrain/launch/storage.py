"""Where an experiment's files go: local folders or ``s3://``... URIs."""
from __future__ import annotations

from pathlib import Path

from cotrain.config import is_uri

TRAIN_SUBDIR = "_train"


def join_storage(storage: str, *parts: str) -> str:
    return "/".join([storage.rstrip("/"), *parts]) if is_uri(storage) else str(Path(storage, *parts))


def absolute_storage(storage: str) -> str:
    """Ray needs absolute local paths; URIs (``s3://``...) pass through."""
    return storage if is_uri(storage) else str(Path(storage).expanduser().resolve())


def experiment_exists(storage: str, name: str) -> bool:
    """Whether an experiment folder already holds Tune state (local storage only)."""
    return not is_uri(storage) and Path(storage, name, "tuner.pkl").exists()
