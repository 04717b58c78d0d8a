"""Cityscapes (fine annotations), 19 evaluation classes.

Layout::

    leftImg8bit/{train,val,test}/<city>/<stem>_leftImg8bit.png
    gtFine/{train,val,test}/<city>/<stem>_gtFine_labelIds.png
    gtFine/{train,val,test}/<city>/<stem>_gtFine_labelTrainIds.png   (optional, preferred)
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from cotrain.data.base import DatasetSpec, Pair, SegmentationDataset, register_dataset
from cotrain.data.checks import IGNORE_INDEX, require_dir


class CityscapesLabel(NamedTuple):
    """One row of the official table (``cityscapesscripts/helpers/labels.py``)."""

    name: str
    id: int
    train_id: int
    color: tuple[int, int, int]


# Transcribed from cityscapesscripts.helpers.labels; tests compare it with the package.
CITYSCAPES_LABELS = (
    CityscapesLabel("unlabeled", 0, 255, (0, 0, 0)),
    CityscapesLabel("ego vehicle", 1, 255, (0, 0, 0)),
    CityscapesLabel("rectification border", 2, 255, (0, 0, 0)),
    CityscapesLabel("out of roi", 3, 255, (0, 0, 0)),
    CityscapesLabel("static", 4, 255, (0, 0, 0)),
    CityscapesLabel("dynamic", 5, 255, (111, 74, 0)),
    CityscapesLabel("ground", 6, 255, (81, 0, 81)),
    CityscapesLabel("road", 7, 0, (128, 64, 128)),
    CityscapesLabel("sidewalk", 8, 1, (244, 35, 232)),
    CityscapesLabel("parking", 9, 255, (250, 170, 160)),
    CityscapesLabel("rail track", 10, 255, (230, 150, 140)),
    CityscapesLabel("building", 11, 2, (70, 70, 70)),
    CityscapesLabel("wall", 12, 3, (102, 102, 156)),
    CityscapesLabel("fence", 13, 4, (190, 153, 153)),
    CityscapesLabel("guard rail", 14, 255, (180, 165, 180)),
    CityscapesLabel("bridge", 15, 255, (150, 100, 100)),
    CityscapesLabel("tunnel", 16, 255, (150, 120, 90)),
    CityscapesLabel("pole", 17, 5, (153, 153, 153)),
    CityscapesLabel("polegroup", 18, 255, (153, 153, 153)),
    CityscapesLabel("traffic light", 19, 6, (250, 170, 30)),
    CityscapesLabel("traffic sign", 20, 7, (220, 220, 0)),
    CityscapesLabel("vegetation", 21, 8, (107, 142, 35)),
    CityscapesLabel("terrain", 22, 9, (152, 251, 152)),
    CityscapesLabel("sky", 23, 10, (70, 130, 180)),
    CityscapesLabel("person", 24, 11, (220, 20, 60)),
    CityscapesLabel("rider", 25, 12, (255, 0, 0)),
    CityscapesLabel("car", 26, 13, (0, 0, 142)),
    CityscapesLabel("truck", 27, 14, (0, 0, 70)),
    CityscapesLabel("bus", 28, 15, (0, 60, 100)),
    CityscapesLabel("caravan", 29, 255, (0, 0, 90)),
    CityscapesLabel("trailer", 30, 255, (0, 0, 110)),
    CityscapesLabel("train", 31, 16, (0, 80, 100)),
    CityscapesLabel("motorcycle", 32, 17, (0, 0, 230)),
    CityscapesLabel("bicycle", 33, 18, (119, 11, 32)),
    CityscapesLabel("license plate", -1, -1, (0, 0, 142)),
)

_TRAIN_LABELS = sorted(
    (label for label in CITYSCAPES_LABELS if 0 <= label.train_id < IGNORE_INDEX), key=lambda label: label.train_id
)
CITYSCAPES_CLASSES = tuple(label.name for label in _TRAIN_LABELS)
CITYSCAPES_PALETTE = tuple(label.color for label in _TRAIN_LABELS)


def _id_to_train_id_table() -> np.ndarray:
    table = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for label in CITYSCAPES_LABELS:
        if 0 <= label.id < 256 and 0 <= label.train_id < IGNORE_INDEX:
            table[label.id] = label.train_id
    return table


ID_TO_TRAIN_ID = _id_to_train_id_table()


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map official label IDs to the 19 train IDs; every other ID (-1, 255, unknown) becomes 255.

    Args:
        label_ids: Integer array (H, W) of official IDs.

    Returns:
        uint8 array (H, W) of train IDs in [0, 19) and 255.
    """
    inside = (label_ids >= 0) & (label_ids < 256)
    return np.where(inside, ID_TO_TRAIN_ID[np.clip(label_ids, 0, 255)], IGNORE_INDEX).astype(np.uint8)


class CityscapesSegmentation(SegmentationDataset):
    """Cityscapes reader; ``*_gtFine_labelTrainIds.png`` is used when present, else labelIds are mapped."""

    def list_files(self, root: Path, split: str) -> list[Pair]:
        image_dir = require_dir(root / "leftImg8bit" / split, "Cityscapes image directory")
        pairs = []
        for image in sorted(image_dir.glob("*/*_leftImg8bit.png")):
            mask_dir = root / "gtFine" / split / image.parent.name
            stem = image.name.removesuffix("_leftImg8bit.png")
            train_ids = mask_dir / f"{stem}_gtFine_labelTrainIds.png"
            pairs.append((image, train_ids if train_ids.is_file() else mask_dir / f"{stem}_gtFine_labelIds.png"))
        return pairs

    def encode_mask(self, labels: np.ndarray, path: Path) -> np.ndarray:
        return labels if path.name.endswith("_labelTrainIds.png") else label_ids_to_train_ids(labels)


register_dataset(
    DatasetSpec(
        name="cityscapes",
        classes=CITYSCAPES_CLASSES,
        palette=CITYSCAPES_PALETTE,
        reader=CityscapesSegmentation,
        eval_protocol={"kind": "sliding", "window": 1024, "stride": 768},
        crop_size=512,
        splits=("train", "val", "test"),
    )
)
