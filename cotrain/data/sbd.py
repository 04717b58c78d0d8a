"""Convert the SBD annotations into VOC's ``SegmentationClassAug`` and ``trainaug.txt``.

SBD (``benchmark_RELEASE/dataset``) stores one ``cls/<id>.mat`` per image with a
``GTcls`` struct whose ``Segmentation`` field is the class-index map.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from cotrain.data.base import read_label_array
from cotrain.data.checks import require_dir
from cotrain.data.voc import find_voc_root, read_ids
from cotrain.errors import DataError

log = logging.getLogger("cotrain.data")


def find_sbd_dataset(sbd: Path) -> Path:
    """Return the SBD ``dataset`` directory (holding ``cls/``) given it, ``benchmark_RELEASE`` or its parent."""
    for candidate in (sbd, sbd / "dataset", sbd / "benchmark_RELEASE" / "dataset"):
        if (candidate / "cls").is_dir():
            return candidate
    raise DataError(f"no cls/ directory under {sbd}; pass benchmark_RELEASE or benchmark_RELEASE/dataset as --sbd")


def read_sbd_mat(path: Path) -> np.ndarray:
    """Read ``GTcls.Segmentation`` from one SBD ``.mat`` file.

    Returns:
        uint8 array (H, W) of class indices.
    """
    try:
        gt = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)["GTcls"]
        return np.asarray(gt.Segmentation, dtype=np.uint8)
    except (OSError, ValueError, KeyError, AttributeError) as error:
        raise DataError(f"{path}: not an SBD cls file with GTcls.Segmentation ({error}); re-download SBD") from error


def _save_grey(labels: np.ndarray, path: Path) -> None:
    Image.fromarray(labels.astype(np.uint8), mode="L").save(path)


def prepare_sbd(sbd: str | Path, voc: str | Path) -> list[str]:
    """Write ``SegmentationClassAug/*.png`` (grey) and ``ImageSets/Segmentation/trainaug.txt``.

    Masks come from SBD where SBD has the image and from VOC's palette PNGs
    otherwise. trainaug = (SBD train ∪ SBD val ∪ VOC train) − VOC val.

    Args:
        sbd: SBD ``benchmark_RELEASE`` (or its ``dataset``) directory.
        voc: ``VOCdevkit`` or ``VOC2012`` directory.

    Returns:
        The sorted trainaug ids.
    """
    sbd_dir, voc_dir = find_sbd_dataset(Path(sbd)), find_voc_root(Path(voc))
    splits = voc_dir / "ImageSets" / "Segmentation"
    out = voc_dir / "SegmentationClassAug"
    out.mkdir(exist_ok=True)
    sbd_ids = {p.stem for p in (sbd_dir / "cls").glob("*.mat")}
    for image_id in sorted(sbd_ids):
        _save_grey(read_sbd_mat(sbd_dir / "cls" / f"{image_id}.mat"), out / f"{image_id}.png")
    voc_masks = require_dir(voc_dir / "SegmentationClass", "VOC mask directory")
    voc_only = [p for p in sorted(voc_masks.glob("*.png")) if p.stem not in sbd_ids]
    for path in voc_only:
        _save_grey(read_label_array(path), out / path.name)
    trainaug = (
        set(read_ids(sbd_dir / "train.txt")) | set(read_ids(sbd_dir / "val.txt")) | set(read_ids(splits / "train.txt"))
    )
    ids = sorted(trainaug - set(read_ids(splits / "val.txt")))
    (splits / "trainaug.txt").write_text("\n".join(ids) + "\n")
    log.info(
        "prepare-sbd: %d SBD + %d VOC masks in %s; trainaug.txt lists %d images",
        len(sbd_ids),
        len(voc_only),
        out,
        len(ids),
    )
    return ids
