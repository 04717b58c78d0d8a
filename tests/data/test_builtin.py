import functools

import numpy as np
import pytest

import cotrain.data.builtin as builtin
from cotrain.data import get_dataset, scan_dataset
from cotrain.data.builtin import BUILTIN_VERSION


def files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def small(tmp_path):
    return builtin.generate_builtin(tmp_path / "a", num_train=12, num_val=3, size=64, seed=0)


def test_deterministic_for_a_seed(small, tmp_path):
    same = builtin.generate_builtin(tmp_path / "b", num_train=12, num_val=3, size=64, seed=0)
    other = builtin.generate_builtin(tmp_path / "c", num_train=12, num_val=3, size=64, seed=1)
    assert files(small) == files(same)
    assert files(small) != files(other)


def test_read_by_voc_reader_with_several_classes(small):
    dataset = get_dataset("builtin", small, "train")
    assert dataset.num_classes == 8 and len(dataset) == 12 and len(get_dataset("builtin", small, "val")) == 3
    labels = set()
    for image, mask in dataset:
        assert image.shape == (3, 64, 64) and mask.shape == (64, 64)
        labels |= set(mask.unique().tolist())
    assert {0, 255} < labels and len(labels - {0, 255}) >= 5
    assert scan_dataset(dataset) == []


def test_not_a_colour_lookup(small):
    """The same class appears in clearly different colours across images."""
    dataset = get_dataset("builtin", small, "train")
    means = {}
    for image, mask in dataset:
        for c in mask.unique().tolist():
            if c not in (0, 255):
                means.setdefault(c, []).append(image[:, mask == c].float().mean(1))
    spread = [np.ptp(np.stack(m), axis=0).max() for m in means.values() if len(m) > 2]
    assert spread and min(spread) > 40


def test_ensure_builtin_is_idempotent(tmp_path, monkeypatch):
    monkeypatch.setattr(
        builtin, "generate_builtin", functools.partial(builtin.generate_builtin, num_train=2, num_val=1, size=32)
    )
    monkeypatch.setenv("COTRAIN_DATA_HOME", str(tmp_path))
    root = builtin.ensure_builtin()
    assert root == tmp_path / BUILTIN_VERSION
    stamp = (root / "ImageSets" / "Segmentation" / "train.txt").stat().st_mtime_ns
    dataset = get_dataset("builtin", None, "train")
    assert len(dataset) == 2 and dataset.files[0][0].is_relative_to(root)
    assert (root / "ImageSets" / "Segmentation" / "train.txt").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == [BUILTIN_VERSION]


def test_killed_generation_leaves_nothing(tmp_path, monkeypatch):
    def crash(root, **kwargs):
        (root / "JPEGImages").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(builtin, "generate_builtin", crash)
    with pytest.raises(KeyboardInterrupt):
        builtin.ensure_builtin(tmp_path / "data")
    assert list(tmp_path.iterdir()) == []
