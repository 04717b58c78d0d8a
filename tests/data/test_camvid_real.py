"""The real CamVid (SegNet layout) end to end: a handful of its images through reader, training and evaluation.

The data live beside the repository in ``../shared/data/camvid`` (or ``$COTRAIN_CAMVID_ROOT``); the test
skips, saying so, where neither exists.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cotrain.data import get_dataset
from cotrain.train import main

REPO = Path(__file__).resolve().parents[2]
CAMVID = Path(os.environ.get("COTRAIN_CAMVID_ROOT", REPO.parent / "shared" / "data" / "camvid"))
pytestmark = pytest.mark.skipif(not (CAMVID / "train").is_dir(),
                                reason=f"real CamVid not found at {CAMVID} (set COTRAIN_CAMVID_ROOT)")


@pytest.fixture
def few_camvid(tmp_path: Path) -> Path:
    """A CamVid root linking the first 4 train and 2 val images (and their masks) of the real set."""
    root = tmp_path / "camvid"
    for split, count in (("train", 4), ("val", 2)):
        for folder in (split, f"{split}annot"):
            (root / folder).mkdir(parents=True)
        for image in sorted((CAMVID / split).glob("*.png"))[:count]:
            (root / split / image.name).symlink_to(image)
            (root / f"{split}annot" / image.name).symlink_to(CAMVID / f"{split}annot" / image.name)
    return root


def test_real_masks_hold_camvid_train_ids(few_camvid: Path) -> None:
    image, mask = get_dataset("camvid", few_camvid, "val")[0]
    assert image.shape == (3, 360, 480) and mask.shape == (360, 480)
    values = set(mask.unique().tolist())
    assert values <= set(range(11)) | {255} and len(values - {255}) >= 5  # a street scene has many classes


def test_smoke_training_on_real_camvid_writes_metrics(few_camvid: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "runs"
    assert main(["--dataset", "camvid", "--data-root", str(few_camvid), "--preset", "smoke", "--epochs", "1",
                 "--out", str(out), "--name", "real", "--direct"]) == 0
    assert "ViT (mit_b0) mIoU" in capsys.readouterr().out
    (metrics,) = [json.loads(line) for line in (out / "real" / "metrics.jsonl").read_text().splitlines()]
    assert metrics["train_images"] == 4 and metrics["eval_split"] == "val"
    assert metrics["eval_protocol"] == "whole image at 360x480" and len(metrics["iou_cnn"]) == 11
    assert 0 <= metrics["miou_cnn"] <= 100 and 0 <= metrics["miou_vit"] <= 100
