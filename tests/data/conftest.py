"""Tiny on-disk datasets in each supported layout, written per test."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from cotrain.data.voc import voc_colormap

H, W = 40, 48


def save_image(path: Path, rng: np.random.Generator, size: tuple[int, int] = (H, W), mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = (3,) if mode == "RGB" else ()
    Image.fromarray(rng.integers(0, 256, size + channels, dtype=np.uint8), mode=mode).save(path)


def save_palette_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(voc_colormap().flatten().tolist())
    image.save(path)


def save_grey_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels.astype(np.uint8), mode="L").save(path)


def random_labels(rng: np.random.Generator, num_classes: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
    labels = rng.integers(0, num_classes, size).astype(np.uint8)
    labels[0, :] = 255
    return labels


@pytest.fixture
def voc_root(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """``VOCdevkit`` with 3 train and 2 val images; returns the root and each id's labels."""
    rng = np.random.default_rng(0)
    base = tmp_path / "VOCdevkit" / "VOC2012"
    splits = {"train": ["2007_000001", "2007_000002", "2008_000003"], "val": ["2009_000004", "2009_000005"]}
    labels = {}
    for split, ids in splits.items():
        for image_id in ids:
            save_image(base / "JPEGImages" / f"{image_id}.jpg", rng)
            labels[image_id] = random_labels(rng, 21)
            save_palette_png(base / "SegmentationClass" / f"{image_id}.png", labels[image_id])
        (base / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")
    return tmp_path / "VOCdevkit", labels


@pytest.fixture
def camvid_root(tmp_path: Path) -> Path:
    """SegNet CamVid layout, two train images whose annotations use 0..11."""
    rng = np.random.default_rng(1)
    for name in ("0001TP_006690.png", "Seq05VD_f00000.png"):
        save_image(tmp_path / "train" / name, rng)
        save_grey_png(tmp_path / "trainannot" / name, rng.integers(0, 12, (H, W)))
    return tmp_path


@pytest.fixture
def make() -> SimpleNamespace:
    """The file writers above, for tests that build their own layouts."""
    return SimpleNamespace(
        image=save_image, palette_png=save_palette_png, grey_png=save_grey_png, labels=random_labels, H=H, W=W
    )
