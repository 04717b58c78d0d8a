import logging
import shutil

import numpy as np
import pytest
import torch

from cotrain.data import get_dataset
from cotrain.errors import DataError


@pytest.mark.parametrize("level", ["VOCdevkit", "VOC2012"])
def test_reads_images_and_palette_indices(voc_root, make, level):
    root, labels = voc_root
    dataset = get_dataset("voc", root if level == "VOCdevkit" else root / "VOC2012", "val")
    assert len(dataset) == 2 and dataset.num_classes == 21 and dataset.classes[15] == "person"
    image, mask = dataset[1]
    assert image.shape == (3, make.H, make.W) and image.dtype == torch.uint8
    assert mask.dtype == torch.int64
    assert torch.equal(mask, torch.from_numpy(labels["2009_000005"]).long())


def test_grey_jpeg_becomes_rgb(voc_root, make):
    root, _ = voc_root
    make.image(root / "VOC2012" / "JPEGImages" / "2009_000004.jpg", np.random.default_rng(3), mode="L")
    image, _ = get_dataset("voc", root, "val")[0]
    assert image.shape == (3, make.H, make.W) and torch.equal(image[0], image[1])


def test_transform_receives_the_pair(voc_root, make):
    root, _ = voc_root
    dataset = get_dataset("voc", root, "val", transform=lambda image, mask: (mask.shape, image.dtype))
    assert dataset[0] == ((make.H, make.W), torch.uint8)


def write_trainaug(root, labels, make):
    base = root / "VOC2012"
    ids = ["2007_000001", "2008_000003"]
    for image_id in ids:
        make.grey_png(base / "SegmentationClassAug" / f"{image_id}.png", labels[image_id])
    (base / "ImageSets" / "Segmentation" / "trainaug.txt").write_text("\n".join(ids) + "\n")
    return ids


def test_trainaug_preferred_and_logged(voc_root, make, caplog):
    root, labels = voc_root
    assert len(get_dataset("voc", root, "train")) == 3
    ids = write_trainaug(root, labels, make)
    with caplog.at_level(logging.INFO, logger="cotrain.data"):
        dataset = get_dataset("voc", root, "train")
    assert [image.stem for image, _ in dataset.files] == ids
    assert all(mask.parent.name == "SegmentationClassAug" for _, mask in dataset.files)
    assert "trainaug.txt" in caplog.text
    assert get_dataset("voc", root, "val").files[0][1].parent.name == "SegmentationClass"


def test_train_without_trainaug_warns_with_image_count_and_the_fix(voc_root, make, caplog):
    root, labels = voc_root
    with caplog.at_level(logging.WARNING, logger="cotrain.data"):
        get_dataset("voc", root, "train")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "(3 images)" in warnings[0] and "prepare-sbd" in warnings[0]
    caplog.clear()
    write_trainaug(root, labels, make)
    with caplog.at_level(logging.WARNING, logger="cotrain.data"):
        get_dataset("voc", root, "train")
        get_dataset("voc", root, "val")
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_grey_and_palette_masks_give_identical_labels(voc_root, make):
    root, labels = voc_root
    palette_masks = [mask for _, mask in get_dataset("voc", root, "train")]
    write_trainaug(root, labels, make)
    grey_masks = [mask for _, mask in get_dataset("voc", root, "train")]
    assert torch.equal(grey_masks[0], palette_masks[0]) and torch.equal(grey_masks[1], palette_masks[2])


def test_construction_fails_fast_on_missing_mask_and_split(voc_root):
    root, _ = voc_root
    (root / "VOC2012" / "SegmentationClass" / "2007_000002.png").unlink()
    with pytest.raises(DataError, match=r"missing mask.*2007_000002\.png"):
        get_dataset("voc", root, "train")
    (root / "VOC2012" / "ImageSets" / "Segmentation" / "val.txt").unlink()
    with pytest.raises(DataError, match=r"split file .*val\.txt"):
        get_dataset("voc", root, "val")
    shutil.rmtree(root / "VOC2012" / "JPEGImages")
    with pytest.raises(DataError, match="JPEGImages"):
        get_dataset("voc", root, "train")


def test_paper_preset_on_voc_without_trainaug_refuses_to_start(voc_root, tmp_path, capsys):
    """The paper's VOC numbers are trained on trainaug's 10,582 images: no silent 1,464-image run."""
    from cotrain.train import main
    root, _ = voc_root
    out = tmp_path / "runs"
    with pytest.raises(SystemExit) as info:
        main(["--preset", "paper", "--dataset", "voc", "--data-root", str(root), "--device", "cpu", "--out", str(out),
              "--direct"])
    assert info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "preset=paper on voc" in err[0] and "python -m cotrain.data prepare-sbd" in err[0], err
    assert "--allow-voc-train-only" in err[0]
    assert not out.exists() or not any(out.iterdir())


def test_paper_preset_on_voc_starts_with_trainaug_or_the_explicit_flag(voc_root, make):
    from cotrain.cli import check_paper_voc
    from cotrain.config import resolve
    from cotrain.errors import ConfigError
    root, labels = voc_root
    paper = {"dataset": "voc", "data_root": str(root)}
    with pytest.raises(ConfigError, match="prepare-sbd"):
        check_paper_voc(resolve("paper", overrides=paper))
    check_paper_voc(resolve("paper", overrides={**paper, "allow_voc_train_only": True}))
    check_paper_voc(resolve("cpu", overrides=paper))  # only the paper preset claims the paper's data
    write_trainaug(root, labels, make)
    check_paper_voc(resolve("paper", overrides=paper))
