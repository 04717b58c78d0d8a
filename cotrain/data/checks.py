"""Data validation: cheap checks at construction, a full scan for ``check``.

Every problem becomes one line naming the file and what to do, before training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from PIL import Image

from cotrain.errors import DataError

if TYPE_CHECKING:
    from cotrain.data.base import SegmentationDataset

IGNORE_INDEX = 255  # the one definition: masks, losses, metrics and plots all ignore this label
T = TypeVar("T")

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


#: What PIL and numpy raise for a file that is not a decodable image.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


def decoded(read: Callable[[Path], T], path: Path) -> T:
    """``read(path)``; an undecodable file becomes a :class:`DataError` naming it and the cause."""
    try:
        return read(path)
    except DataError:
        raise
    except DECODE_ERRORS as exc:
        raise DataError(f"{path}: cannot be decoded ({type(exc).__name__}: {exc})") from exc


def label_problem(labels: np.ndarray, num_classes: int) -> str | None:
    """Why ``labels`` are not train IDs in [0, K) or 255, naming the first bad value; None if they are."""
    bad = ((labels < 0) | (labels >= num_classes)) & (labels != IGNORE_INDEX)
    if not bad.any():
        return None
    return f"label value {int(labels[bad].flat[0])} is outside 0..{num_classes - 1} and {IGNORE_INDEX} (ignore)"


def size_problem(image_size: tuple[int, int], mask_size: tuple[int, int], image: Path) -> str | None:
    """Why a mask of ``mask_size`` (W, H) does not fit its image; None if it does."""
    if image_size == mask_size:
        return None
    return f"mask is {mask_size[0]}x{mask_size[1]} (WxH), its image {image} is {image_size[0]}x{image_size[1]}"


def header_size(path: Path) -> tuple[int, int]:
    """(W, H) from the file's header, without decoding the pixels."""
    def read(p: Path) -> tuple[int, int]:
        with Image.open(p) as image:
            return image.size
    return decoded(read, path)


def require_matching_sizes(pairs: Sequence[tuple[Path, Path]], what: str) -> None:
    """Open every image and mask header; raise :class:`DataError` at the first pair that does not fit.

    Cheap (headers only, no decoding), so every run does it before training starts.
    """
    for image, mask in pairs:
        problem = size_problem(header_size(image), header_size(mask), image)
        if problem:
            raise DataError(f"{mask}: {problem}; run `python -m cotrain.data check` for a full report ({what})")


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


@dataclass(frozen=True)
class Problem:
    """One faulty file: its kind (a key of :data:`ADVICE`), its path and why."""

    kind: str
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.reason}"


def scan_pair(dataset: SegmentationDataset, image: Path, mask: Path) -> list[Problem]:
    """Open one pair fully (decode both, check sizes and label values) and return its problems."""
    from cotrain.data.base import read_image

    problems = []
    try:
        pixels = decoded(read_image, image)
    except DataError as exc:
        pixels = None
        problems.append(Problem("unreadable image", image, _reason(exc, image)))
    try:
        labels = decoded(dataset.read_mask, mask).numpy()
    except DataError as exc:
        return problems + [Problem("unreadable mask", mask, _reason(exc, mask))]
    if pixels is not None:
        mismatch = size_problem((pixels.shape[2], pixels.shape[1]), (labels.shape[1], labels.shape[0]), image)
        if mismatch:
            problems.append(Problem("size mismatch", mask, mismatch))
    bad_labels = label_problem(labels, dataset.num_classes)
    if bad_labels:
        problems.append(Problem("bad label values", mask, bad_labels))
    return problems


def _reason(exc: DataError, path: Path) -> str:
    text = str(exc)
    return text[len(f"{path}: "):] if text.startswith(f"{path}: ") else text


def scan_dataset(dataset: SegmentationDataset) -> list[Problem]:
    """Open every file of ``dataset`` and return every problem, one per faulty file (empty when clean)."""
    problems = [Problem(kind, path, ADVICE[kind]) for kind, paths in missing_files(dataset.files).items()
                for path in paths]
    if not dataset.files:
        problems.append(Problem("empty split", dataset.root, ADVICE["empty split"]))
    broken = {p.path for p in problems}
    for image, mask in dataset.files:
        if image not in broken and mask not in broken:
            problems += scan_pair(dataset, image, mask)
    return problems


def summarise(problems: Sequence[Problem]) -> list[str]:
    """One line per kind: how many files and what to do."""
    counts: dict[str, int] = {}
    for problem in problems:
        counts[problem.kind] = counts.get(problem.kind, 0) + 1
    return [f"{kind}: {n} file(s) ({ADVICE[kind]})" for kind, n in counts.items()]
