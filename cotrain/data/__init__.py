"""Datasets, transforms and data checks.

Importing this package registers every dataset in :data:`DATASETS`.
"""

from cotrain.data import builtin, camvid, cityscapes, voc  # noqa: E402,F401  (registration)
from cotrain.data.base import (
    DATASETS,
    DatasetSpec,
    SegmentationDataset,
    get_dataset,
    get_spec,
    register_dataset,
)
from cotrain.data.builtin import ensure_builtin, generate_builtin
from cotrain.data.checks import IGNORE_INDEX, scan_dataset
from cotrain.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform, train_transform

__all__ = [
    "DATASETS", "IGNORE_INDEX", "IMAGENET_MEAN", "IMAGENET_STD", "DatasetSpec", "SegmentationDataset",
    "ensure_builtin", "eval_transform", "generate_builtin", "get_dataset", "get_spec", "register_dataset",
    "scan_dataset", "train_transform",
]  # fmt: skip
