import re
from pathlib import Path

import pytest

from cotrain.data import DATASETS, get_dataset, get_spec
from cotrain.engine.inference import EvalProtocol
from cotrain.errors import DataError


def test_unknown_dataset_names_value_and_allowed():
    with pytest.raises(ValueError, match=re.escape("'imagenet'") + ".*" + ", ".join(sorted(DATASETS))):
        get_spec("imagenet")


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_spec_is_consistent(name):
    spec = get_spec(name)
    assert spec.name == name and spec.num_classes == len(spec.classes) == len(spec.palette)
    assert all(len(rgb) == 3 and all(0 <= c <= 255 for c in rgb) for rgb in spec.palette)
    assert spec.crop_size % 32 == 0
    EvalProtocol.from_spec(spec).describe()


def test_paper_protocols_and_class_counts():
    assert [get_spec(n).num_classes for n in ("voc", "cityscapes", "camvid")] == [21, 19, 11]
    described = {n: EvalProtocol.from_spec(get_spec(n)).describe() for n in ("voc", "cityscapes", "camvid", "builtin")}
    assert described == {
        "voc": "center-crop 512",
        "cityscapes": "sliding window 1024/768",
        "camvid": "whole image at 360x480",
        "builtin": "whole image",
    }


def test_unknown_split_and_missing_root(tmp_path: Path):
    with pytest.raises(ValueError, match=r"'tran'.*train, val"):
        get_dataset("voc", tmp_path, "tran")
    with pytest.raises(DataError, match="needs a root"):
        get_dataset("voc", None, "train")
    with pytest.raises(DataError, match=str(tmp_path / "absent")):
        get_dataset("camvid", tmp_path / "absent", "train")
