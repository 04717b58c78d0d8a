import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from cotrain.config import resolve
from cotrain.data import get_dataset
from cotrain.engine.data import build_eval_data
from cotrain.errors import ConfigError


def test_unlabelled_becomes_ignore(camvid_root):
    dataset = get_dataset("camvid", camvid_root, "train")
    assert len(dataset) == 2 and dataset.num_classes == 11 and dataset.classes[0] == "sky"
    raw = torch.from_numpy(np.array(Image.open(camvid_root / "trainannot" / "0001TP_006690.png"))).long()
    image, mask = dataset[0]
    assert image.shape == (3, 40, 48)
    assert torch.equal(mask, torch.where(raw == 11, 255, raw))
    assert (raw == 11).any() and mask.max() == 255 and mask[mask != 255].max() <= 10


def test_eval_split_selects_the_evaluated_split_and_rejects_unknown_ones(camvid_root):
    for split in ("val", "test"):
        shutil.copytree(camvid_root / "train", camvid_root / split)
        shutil.copytree(camvid_root / "trainannot", camvid_root / f"{split}annot")
    (camvid_root / "test" / "Seq05VD_f00000.png").unlink()
    (camvid_root / "testannot" / "Seq05VD_f00000.png").unlink()
    cfg = resolve("smoke", overrides={"dataset": "camvid", "data_root": str(camvid_root)})
    spec = get_dataset("camvid", camvid_root, "val").spec
    assert len(build_eval_data(cfg, spec)[0]) == 2
    test_set, _ = build_eval_data(cfg.replace(eval_split="test"), spec)
    assert [image.parent.name for image, _ in test_set.files] == ["test"]
    with pytest.raises(ConfigError, match=r"eval_split='trainval' is invalid: .*train, val, test"):
        build_eval_data(cfg.replace(eval_split="trainval"), spec)
