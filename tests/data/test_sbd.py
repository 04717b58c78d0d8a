import numpy as np
import scipy.io
import scipy.sparse
import torch

from cotrain.data import get_dataset
from cotrain.data.__main__ import main


def write_sbd(tmp_path, voc_labels, make):
    """SBD ``benchmark_RELEASE/dataset`` with cls/*.mat in the real GTcls struct layout."""
    dataset = tmp_path / "benchmark_RELEASE" / "dataset"
    (dataset / "cls").mkdir(parents=True)
    rng = np.random.default_rng(5)
    sbd = {"2007_000001": voc_labels["2007_000001"], "2009_000004": voc_labels["2009_000004"]}
    sbd["2010_000006"] = make.labels(rng, 21)
    for image_id, labels in sbd.items():
        segmentation = np.where(labels == 255, 0, labels).astype(np.uint8)  # SBD has no border band
        boundaries = np.empty((20, 1), dtype=object)
        boundaries[:, 0] = [scipy.sparse.csc_matrix(segmentation == c) for c in range(1, 21)]
        gt = {"Segmentation": segmentation, "Boundaries": boundaries, "CategoriesPresent": np.unique(segmentation)[1:]}
        scipy.io.savemat(dataset / "cls" / f"{image_id}.mat", {"GTcls": gt})
        sbd[image_id] = segmentation
    (dataset / "train.txt").write_text("2007_000001\n2010_000006\n")
    (dataset / "val.txt").write_text("2009_000004\n")
    return tmp_path / "benchmark_RELEASE", sbd


def test_prepare_sbd_writes_masks_and_trainaug(voc_root, tmp_path, make):
    root, labels = voc_root
    sbd_root, sbd = write_sbd(tmp_path, labels, make)
    make.image(root / "VOC2012" / "JPEGImages" / "2010_000006.jpg", np.random.default_rng(0))
    assert main(["prepare-sbd", "--sbd", str(sbd_root), "--voc", str(root)]) == 0
    base = root / "VOC2012"
    # (SBD train ∪ SBD val ∪ VOC train) − VOC val: 2009_000004 is VOC val
    expected = ["2007_000001", "2007_000002", "2008_000003", "2010_000006"]
    assert (base / "ImageSets" / "Segmentation" / "trainaug.txt").read_text().split() == expected
    dataset = get_dataset("voc", root, "train")
    masks = {image.stem: mask for image, (_, mask) in zip((p for p, _ in dataset.files), dataset, strict=True)}
    assert torch.equal(masks["2007_000001"], torch.from_numpy(sbd["2007_000001"]).long())
    assert torch.equal(masks["2010_000006"], torch.from_numpy(sbd["2010_000006"]).long())
    # VOC-only images keep VOC's labels (with the 255 band), converted from palette to grey
    assert torch.equal(masks["2007_000002"], torch.from_numpy(labels["2007_000002"]).long())


def test_prepare_sbd_rejects_wrong_directory(voc_root, tmp_path):
    root, _ = voc_root
    assert main(["prepare-sbd", "--sbd", str(tmp_path / "nowhere"), "--voc", str(root)]) == 2
