"""Dataset registry and the shared segmentation reader.

A dataset is one reader class plus one :class:`DatasetSpec` registered in
:data:`DATASETS`; :func:`get_dataset` is the only entry point the engine uses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from cotrain.data.checks import (
    decoded,
    label_problem,
    require_dir,
    require_pairs,
    size_problem,
)
from cotrain.errors import DataError

Pair = tuple[Path, Path]
Transform = Callable[[torch.Tensor, torch.Tensor], Any]


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the engine needs to know about a dataset besides its files.

    Attributes:
        name: Registry key.
        classes: Class names, index = train ID.
        palette: One RGB colour per class, for visualisation.
        reader: Dataset class called as ``reader(root, split, spec, transform, check)``.
        eval_protocol: Keyword arguments of
            :class:`cotrain.engine.inference.EvalProtocol` (kept as plain data so the
            data package does not import the engine).
        crop_size: Crop side `python -m cotrain.data bench` uses by default (training takes the config's
            ``crop_size``, set per dataset by the presets: `docs/recipes.md`).
        splits: Splits the reader accepts.
        ensure_root: Called with the user's root (possibly ``None``) to produce a
            usable root, for datasets that can be generated; ``None`` means a root
            is required.
    """

    name: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    reader: type[SegmentationDataset]
    eval_protocol: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({"kind": "whole"}))
    crop_size: int = 512
    splits: tuple[str, ...] = ("train", "val")
    ensure_root: Callable[[str | Path | None], Path] | None = None

    def __post_init__(self) -> None:
        if len(self.palette) != len(self.classes):
            raise ValueError(
                f"dataset {self.name!r}: {len(self.palette)} palette colours for {len(self.classes)} classes"
            )
        object.__setattr__(self, "eval_protocol", MappingProxyType(dict(self.eval_protocol)))

    @property
    def num_classes(self) -> int:
        """Number of classes K; train IDs are 0..K-1, 255 is ignored."""
        return len(self.classes)


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add ``spec`` to :data:`DATASETS`; a name can be registered once."""
    if spec.name in DATASETS:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    DATASETS[spec.name] = spec
    return spec


def get_spec(name: str) -> DatasetSpec:
    """Return the registered spec called ``name``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def get_dataset(
    name: str,
    root: str | Path | None,
    split: str = "train",
    transform: Transform | None = None,
    *,
    check: bool = True,
) -> SegmentationDataset:
    """Build the dataset ``name`` for ``split``.

    Args:
        name: A key of :data:`DATASETS`.
        root: Dataset root; may be ``None`` only for generated datasets (``builtin``).
        split: One of the spec's splits.
        transform: Called as ``transform(image, mask)`` on every item.
        check: Run the cheap construction checks (root, split file, every image has
            its mask) and raise :class:`DataError` at once.

    Returns:
        The dataset; without a transform an item is ``(image uint8 (3, H, W),
        mask int64 (H, W))``.
    """
    spec = get_spec(name)
    if split not in spec.splits:
        raise ValueError(f"unknown split {split!r} for dataset {name!r}; allowed: {', '.join(spec.splits)}")
    if spec.ensure_root is not None:
        root = spec.ensure_root(root)
    elif root is None:
        raise DataError(
            f"dataset {name!r} needs a root directory; pass root=PATH (see its layout in cotrain/data/{name}.py)"
        )
    return spec.reader(Path(root).expanduser(), split, spec, transform, check)


def read_image(path: Path) -> torch.Tensor:
    """Read an image file as RGB (grey and palette images are converted).

    Returns:
        uint8 tensor (3, H, W).
    """
    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"))
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def read_label_array(path: Path) -> np.ndarray:
    """Read a label PNG as stored: palette PNGs give the palette *index*, never colours.

    Returns:
        Integer array (H, W).
    """
    with Image.open(path) as mask:
        if mask.mode not in ("P", "L", "I", "I;16"):
            raise DataError(
                f"{path}: label image has mode {mask.mode}; expected a palette or grey PNG of class indices"
            )
        return np.array(mask)


class SegmentationDataset(Dataset, ABC):
    """Image/mask pairs of one split; subclasses list files and encode labels.

    Attributes:
        files: ``(image_path, mask_path)`` pairs.
        spec: The dataset's :class:`DatasetSpec`.
        transform: Applied as ``transform(image, mask)`` when not ``None``.
    """

    def __init__(
        self, root: Path, split: str, spec: DatasetSpec, transform: Transform | None = None, check: bool = True
    ) -> None:
        require_dir(root, f"the {spec.name} root")
        self.root, self.split, self.spec, self.transform = root, split, spec, transform
        self.files: list[Pair] = self.list_files(root, split)
        if check:
            require_pairs(self.files, f"{spec.name} {split}")

    @abstractmethod
    def list_files(self, root: Path, split: str) -> list[Pair]:
        """Return the ``(image, mask)`` pairs of ``split``; masks need not exist yet."""

    def encode_mask(self, labels: np.ndarray, path: Path) -> np.ndarray:
        """Map the label values (H, W) stored in ``path`` to train IDs in [0, K) and 255; identity by default."""
        return labels

    def read_mask(self, path: Path) -> torch.Tensor:
        """Read a mask as train IDs.

        Returns:
            int64 tensor (H, W), values in [0, K) and 255 for valid data.
        """
        return torch.from_numpy(self.encode_mask(read_label_array(path), path).astype(np.int64))

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names, index = train ID."""
        return self.spec.classes

    @property
    def palette(self) -> tuple[tuple[int, int, int], ...]:
        """RGB colour of each class."""
        return self.spec.palette

    @property
    def num_classes(self) -> int:
        """Number of classes K."""
        return self.spec.num_classes

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Any:
        image_path, mask_path = self.files[index]
        image, mask = self.read_pair(image_path, mask_path)
        return (image, mask) if self.transform is None else self.transform(image, mask)

    def read_pair(self, image_path: Path, mask_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode one pair; a file that cannot be used raises :class:`DataError` naming it and why.

        (Never retried: the same file fails the same way, so the run stops at once.)
        """
        image, mask = decoded(read_image, image_path), decoded(self.read_mask, mask_path)
        problem = size_problem((image.shape[2], image.shape[1]), (mask.shape[1], mask.shape[0]), image_path)
        problem = problem or label_problem(mask.numpy(), self.num_classes)
        if problem:
            raise DataError(f"{mask_path}: {problem}")
        return image, mask
