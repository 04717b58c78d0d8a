"""CamVid, the 11-class SegNet version (360x480 images).

Layout::

    {train,val,test}/<name>.png
    {train,val,test}annot/<name>.png     grey PNGs, 0..10 classes, 11 = unlabelled
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cotrain.data.base import DatasetSpec, Pair, SegmentationDataset, register_dataset
from cotrain.data.checks import IGNORE_INDEX, require_dir

CAMVID_CLASSES = (
    "sky", "building", "pole", "road", "pavement", "tree", "sign_symbol", "fence", "car", "pedestrian", "bicyclist",
)  # fmt: skip
CAMVID_PALETTE = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)  # fmt: skip
CAMVID_UNLABELLED = 11


class CamVidSegmentation(SegmentationDataset):
    """SegNet CamVid reader; the "unlabelled" class 11 becomes 255."""

    def list_files(self, root: Path, split: str) -> list[Pair]:
        image_dir = require_dir(root / split, "CamVid image directory")
        return [(image, root / f"{split}annot" / image.name) for image in sorted(image_dir.glob("*.png"))]

    def encode_mask(self, labels: np.ndarray, path: Path) -> np.ndarray:
        return np.where(labels == CAMVID_UNLABELLED, IGNORE_INDEX, labels)


register_dataset(
    DatasetSpec(
        name="camvid",
        classes=CAMVID_CLASSES,
        palette=CAMVID_PALETTE,
        reader=CamVidSegmentation,
        eval_protocol={"kind": "resize", "size": (360, 480)},
        crop_size=512,
        splits=("train", "val", "test"),
    )
)
