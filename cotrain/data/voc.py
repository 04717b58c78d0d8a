"""PASCAL VOC 2012 (optionally with the SBD "trainaug" masks).

Layout::

    VOCdevkit/VOC2012/
        JPEGImages/<id>.jpg
        SegmentationClass/<id>.png          palette PNGs, 255 = object borders
        SegmentationClassAug/<id>.png       grey PNGs from ``prepare-sbd`` (optional)
        ImageSets/Segmentation/{train,val,trainaug}.txt
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cotrain.data.base import DatasetSpec, Pair, SegmentationDataset, register_dataset
from cotrain.data.checks import require_file
from cotrain.errors import DataError

log = logging.getLogger("cotrain.data")

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


def voc_colormap(n: int = 256) -> np.ndarray:
    """The VOC palette (bit-interleaved colours of the devkit's ``labelcolormap``).

    Returns:
        uint8 array (n, 3); index 255 is the border colour (224, 224, 192).
    """
    index = np.arange(n)
    cmap = np.zeros((n, 3), dtype=np.int64)
    for shift in range(8):
        for channel in range(3):
            bit = (index >> (3 * shift + channel)) & 1
            cmap[:, channel] |= bit << (7 - shift)
    return cmap.astype(np.uint8)


VOC_PALETTE = tuple(tuple(int(c) for c in rgb) for rgb in voc_colormap(len(VOC_CLASSES)))


def find_voc_root(root: Path) -> Path:
    """Return the ``VOC2012``-like directory (the one holding ``JPEGImages``) under ``root``.

    ``root`` may be that directory, ``VOCdevkit`` or the directory above ``VOCdevkit``.
    """
    for candidate in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (candidate / "JPEGImages").is_dir():
            return candidate
    raise DataError(f"no JPEGImages/ under {root}; pass the VOCdevkit or VOC2012 directory as root")


def read_ids(path: Path) -> list[str]:
    """Read a split file: one image id per line, blank lines ignored."""
    return [line.split()[0] for line in require_file(path, "split file").read_text().splitlines() if line.strip()]


def has_trainaug(base: Path) -> bool:
    """Whether ``prepare-sbd`` built trainaug under the ``VOC2012``-like directory ``base`` (see ``find_voc_root``)."""
    return (base / "ImageSets" / "Segmentation" / "trainaug.txt").is_file() and (base / "SegmentationClassAug").is_dir()


class VOCSegmentation(SegmentationDataset):
    """VOC-layout reader; ``split="train"`` prefers ``trainaug`` when it was prepared."""

    def list_files(self, root: Path, split: str) -> list[Pair]:
        base = find_voc_root(root)
        split_dir, mask_dir = base / "ImageSets" / "Segmentation", base / "SegmentationClass"
        if split == "train" and has_trainaug(base):
            split, mask_dir = "trainaug", base / "SegmentationClassAug"
        ids = read_ids(split_dir / f"{split}.txt")
        if split == "train" and self.spec.name == "voc":  # the built-in set shares this reader, not trainaug
            log.warning(
                "voc train: no SegmentationClassAug/ with trainaug.txt under %s, so training uses train.txt "
                "(%d images), not the paper's 10,582-image trainaug; build it with: python -m cotrain.data "
                "prepare-sbd --sbd SBD_ROOT --voc %s",
                base, len(ids), root,
            )
        log.info(
            "%s %s: using %s.txt (%d images, masks from %s)", self.spec.name, self.split, split, len(ids), mask_dir.name
        )
        return [(base / "JPEGImages" / f"{i}.jpg", mask_dir / f"{i}.png") for i in ids]


register_dataset(
    DatasetSpec(
        name="voc",
        classes=VOC_CLASSES,
        palette=VOC_PALETTE,
        reader=VOCSegmentation,
        eval_protocol={"kind": "center_crop", "crop": 512},
        crop_size=512,
    )
)
