"""Data validation: cheap checks at construction, a full scan for ``check``.

Every problem becomes one line naming the file and what to do, before training.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    from cotrain.data.base import SegmentationDataset

IGNORE_INDEX = 255

#: Problem kind -> what the user should do about it.
ADVICE: dict[str, str] = {
    "missing image": "restore the image or remove its id from the split file",
    "missing mask": "add the mask (same stem) or remove the image from the split",
    "unreadable image": "re-download or delete the file",
    "unreadable mask": "re-download or regenerate the mask",
    "size mismatch": "the mask must have the image's height and width",
    "bad label values": "labels must be train IDs in [0, K) or 255 (ignore)",
    "empty split": "the split lists no image; check the root and split",
}


class DataError(ValueError):
    """The dataset on disk is missing, incomplete or malformed."""


def require_dir(path: Path, what: str) -> Path:
    """Return ``path`` if it is a directory, else raise :class:`DataError` naming it."""
    if not path.is_dir():
        raise DataError(f"{what} {path} does not exist or is not a directory; check the path")
    return path


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` if it is a file, else raise :class:`DataError` naming it."""
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist; check the root or prepare the dataset")
    return path


def _examples(paths: Sequence[Path], limit: int = 5) -> str:
    return ", ".join(str(p) for p in paths[:limit]) + (", ..." if len(paths) > limit else "")


def format_problem(kind: str, paths: Sequence[Path]) -> str:
    """One line: the kind, how many files, the first five, and what to do."""
    return f"{kind}: {len(paths)} file(s): {_examples(paths)} ({ADVICE[kind]})"


def missing_files(pairs: Iterable[tuple[Path, Path]]) -> dict[str, list[Path]]:
    """Find listed images and masks that do not exist, without opening anything.

    Directory listings are cached so that tens of thousands of files cost one
    ``listdir`` per directory.
    """
    listings: dict[Path, set[str]] = {}

    def exists(path: Path) -> bool:
        if path.parent not in listings:
            listings[path.parent] = set(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else set()
        return path.name in listings[path.parent]

    problems: dict[str, list[Path]] = {"missing image": [], "missing mask": []}
    for image, mask in pairs:
        if not exists(image):
            problems["missing image"].append(image)
        elif not exists(mask):
            problems["missing mask"].append(mask)
    return {kind: paths for kind, paths in problems.items() if paths}


def require_pairs(pairs: Sequence[tuple[Path, Path]], what: str) -> None:
    """Raise :class:`DataError` if the split is empty or a listed image or mask is missing."""
    if not pairs:
        raise DataError(f"{what}: {format_problem('empty split', [])}")
    problems = missing_files(pairs)
    if problems:
        kind, paths = next(iter(problems.items()))
        raise DataError(f"{what}: {format_problem(kind, paths)}; run `python -m cotrain.data check` for a full report")


def _image_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:
            image.load()
            return image.size
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def scan_pair(dataset: SegmentationDataset, image: Path, mask: Path) -> list[str]:
    """Open one pair fully and return the kinds of problem it has."""
    image_size = _image_size(image)
    try:
        labels = dataset.read_mask(mask).numpy()
    except (OSError, UnidentifiedImageError, ValueError):
        return ["unreadable mask"] + ([] if image_size else ["unreadable image"])
    kinds = [] if image_size else ["unreadable image"]
    if image_size and image_size != (labels.shape[1], labels.shape[0]):
        kinds.append("size mismatch")
    valid = (labels >= 0) & (labels < dataset.num_classes) | (labels == IGNORE_INDEX)
    if not valid.all():
        kinds.append("bad label values")
    return kinds


def scan_dataset(dataset: SegmentationDataset) -> dict[str, list[Path]]:
    """Open every file of ``dataset`` and collect every problem.

    Returns:
        Problem kind -> offending paths (image path, except for mask problems),
        empty when the data is clean.
    """
    problems = {kind: list(paths) for kind, paths in missing_files(dataset.files).items()}
    if not dataset.files:
        problems["empty split"] = []
    broken = set(problems.get("missing image", [])) | set(problems.get("missing mask", []))
    for image, mask in dataset.files:
        if image in broken or mask in broken:
            continue
        for kind in scan_pair(dataset, image, mask):
            problems.setdefault(kind, []).append(mask if "mask" in kind or kind == "bad label values" else image)
    return problems
