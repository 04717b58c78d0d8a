import numpy as np
import torch
from PIL import Image

from cotrain.data import get_dataset


def test_unlabelled_becomes_ignore(camvid_root):
    dataset = get_dataset("camvid", camvid_root, "train")
    assert len(dataset) == 2 and dataset.num_classes == 11 and dataset.classes[0] == "sky"
    raw = torch.from_numpy(np.array(Image.open(camvid_root / "trainannot" / "0001TP_006690.png"))).long()
    image, mask = dataset[0]
    assert image.shape == (3, 40, 48)
    assert torch.equal(mask, torch.where(raw == 11, 255, raw))
    assert (raw == 11).any() and mask.max() == 255 and mask[mask != 255].max() <= 10
