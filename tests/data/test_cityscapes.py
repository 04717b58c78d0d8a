import numpy as np
import pytest
import torch

from cotrain.data import get_dataset
from cotrain.data.cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_LABELS, label_ids_to_train_ids

CITY = "aachen"
STEM = "aachen_000000_000019"


def write_cityscapes(root, make, label_ids, split="train"):
    rng = np.random.default_rng(2)
    make.image(root / "leftImg8bit" / split / CITY / f"{STEM}_leftImg8bit.png", rng, size=label_ids.shape)
    make.grey_png(root / "gtFine" / split / CITY / f"{STEM}_gtFine_labelIds.png", label_ids)


def test_table_matches_cityscapesscripts():
    labels = pytest.importorskip("cityscapesscripts.helpers.labels", reason="cityscapesscripts is not installed").labels
    official = [(label.name, label.id, label.trainId, tuple(label.color)) for label in labels]
    assert [tuple(label) for label in CITYSCAPES_LABELS] == official


def test_every_official_id_maps_to_its_train_id():
    ids = np.array([label.id for label in CITYSCAPES_LABELS] + [255])
    expected = [label.train_id if 0 <= label.train_id < 255 else 255 for label in CITYSCAPES_LABELS] + [255]
    assert label_ids_to_train_ids(ids).tolist() == expected
    assert len(CITYSCAPES_CLASSES) == 19 and CITYSCAPES_CLASSES[0] == "road" and CITYSCAPES_CLASSES[18] == "bicycle"


def test_reader_maps_label_ids(tmp_path, make):
    ids = np.array([label.id for label in CITYSCAPES_LABELS if label.id >= 0] + [255] * 14).reshape(4, 12)
    write_cityscapes(tmp_path, make, ids)
    dataset = get_dataset("cityscapes", tmp_path, "train")
    image, mask = dataset[0]
    assert image.shape == (3, 4, 12) and dataset.num_classes == 19
    assert torch.equal(mask, torch.from_numpy(label_ids_to_train_ids(ids)).long())
    assert sorted(set(mask.unique().tolist())) == list(range(19)) + [255]


def test_label_train_ids_preferred(tmp_path, make):
    write_cityscapes(tmp_path, make, np.full((4, 12), 7))  # road -> 0
    train_ids = np.full((4, 12), 5)
    make.grey_png(tmp_path / "gtFine" / "train" / CITY / f"{STEM}_gtFine_labelTrainIds.png", train_ids)
    dataset = get_dataset("cityscapes", tmp_path, "train")
    assert dataset.files[0][1].name.endswith("_labelTrainIds.png")
    assert torch.equal(dataset[0][1], torch.full((4, 12), 5))
