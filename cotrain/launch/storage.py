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
    """Whether an experiment folder already holds Tune state, in a local folder or under a URI."""
    if not is_uri(storage):
        return Path(storage, name, "tuner.pkl").exists()
    import pyarrow.fs
    filesystem, root = storage_filesystem(storage)
    marker = "/".join([root.rstrip("/"), name, "tuner.pkl"])
    return filesystem.get_file_info(marker).type != pyarrow.fs.FileType.NotFound


def resume_stage(resume: bool, storage: str, name: str) -> bool:
    """Whether one stage of a staged command resumes: ``--resume`` was given and the stage had started
    (a stage the interrupted command never reached starts fresh)."""
    return resume and experiment_exists(storage, name)


def storage_filesystem(uri: str):
    """(pyarrow filesystem, path) of a storage URI, as Ray Train and Tune open it."""
    import pyarrow.fs
    return pyarrow.fs.FileSystem.from_uri(uri)
