"""Datasets and evaluation protocol of a run, built from its config (checked before training starts)."""
from __future__ import annotations

from typing import Any

import torch

from cotrain.config import TrainConfig, parse_grid, parse_scale
from cotrain.data import DatasetSpec, eval_transform, get_dataset, get_spec, train_transform
from cotrain.engine.inference import EvalProtocol
from cotrain.errors import ConfigError


class EvalItems:
    """Apply the protocol's crop/resize to raw items, then normalise."""

    def __init__(self, protocol: EvalProtocol) -> None:
        self.protocol = protocol
        self.normalise = eval_transform()

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> Any:
        return self.normalise(*self.protocol.prepare(image, mask))


def check_num_classes(cfg: TrainConfig, spec: DatasetSpec) -> None:
    if cfg.num_classes is not None and cfg.num_classes != spec.num_classes:
        raise ConfigError(f"num_classes={cfg.num_classes} contradicts dataset {spec.name!r}, "
                          f"which has {spec.num_classes} classes; drop --num-classes or set {spec.num_classes}")


def build_train_data(cfg: TrainConfig):
    """The training dataset with random scale/crop/flip, and the dataset's spec."""
    spec = get_spec(cfg.dataset)
    check_num_classes(cfg, spec)
    transform = train_transform(cfg.crop_size, parse_scale(cfg.train_scale))
    dataset = get_dataset(cfg.dataset, cfg.data_root, "train", transform)
    per_worker = len(dataset) // cfg.workers
    if cfg.batch_size > per_worker:  # drop_last would leave no batch at all
        raise ConfigError(f"batch_size={cfg.batch_size} is invalid: larger than the {len(dataset)} training images "
                          f"of {spec.name}{f' / {cfg.workers} workers' if cfg.workers > 1 else ''}; "
                          f"use --batch-size {max(per_worker, 1)} or less")
    return dataset, spec


def eval_protocol(cfg: TrainConfig, spec: DatasetSpec) -> EvalProtocol:
    """The dataset's default protocol, or the config's override of its kind (``eval_size``: resize)."""
    if cfg.eval_size:
        if cfg.eval_protocol not in (None, "resize"):
            raise ConfigError(f"eval_size={cfg.eval_size} is invalid with eval_protocol={cfg.eval_protocol}: "
                              "allowed only with the resize protocol (leave eval_protocol unset or set resize)")
        return EvalProtocol.from_spec(spec, kind="resize", size=parse_grid(cfg.eval_size))
    return EvalProtocol.from_spec(spec, **({"kind": cfg.eval_protocol} if cfg.eval_protocol else {}))


def build_eval_data(cfg: TrainConfig, spec: DatasetSpec):
    """The ``eval_split`` dataset prepared for the evaluation protocol, and the protocol."""
    if cfg.eval_split not in spec.splits:
        raise ConfigError(f"eval_split={cfg.eval_split!r} is invalid: dataset {spec.name!r} has splits "
                          f"{', '.join(spec.splits)}")
    protocol = eval_protocol(cfg, spec)
    return get_dataset(cfg.dataset, cfg.data_root, cfg.eval_split, EvalItems(protocol)), protocol
