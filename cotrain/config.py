"""The run configuration: one flat, frozen, validated dataclass, plus presets.

Flat on purpose: the same keys are Ray Tune's search space, the YAML file, the CLI flags
and the ``params.json`` the table script reads. Generated: the run's own keys (``_RunKeys``)
plus every registered method's options (declared once, beside the method). Resolution order:
field defaults < preset < the preset's per-dataset values < config file < command-line flags.
Importing it loads no torch (the method declarations are torch-free); validating a config reads the
encoder and dataset registries, which do.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from cotrain.errors import ConfigError
from cotrain.methods import METHODS, option_fields
from cotrain.options import (
    at_least,
    base_type,
    check_fields,
    fraction,
    nonneg,
    one_of,
    option,
    parse_grid,
    parse_rates,
    parse_scale,
    parses,
    positive,
)
from cotrain.plugins import ENV_VAR as PLUGINS_ENV
from cotrain.plugins import plugin_modules

__all__ = ["PRESETS", "DATASET_PRESETS", "TrainConfig", "resolve", "load_yaml", "add_config_flags",
           "config_from_args", "is_uri", "absolute_path", "parse_grid", "parse_scale"]

UPDATE_ORDERS = ("joint", "sequential")
PATH_KEYS = ("data_root", "init_from")  # local paths made absolute when a config is resolved


def _seed_range(v: int) -> Optional[str]:
    return None if 0 <= v < 2**32 else "must be an integer in [0, 2**32)"


def _plain_name(v: str) -> Optional[str]:
    # The run folder is <out>/<name>: anything but a plain folder name could write elsewhere.
    ok = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+=-]*", v) is not None
    return None if ok else "must be a plain folder name (letters, digits, . _ + = -; no '/' or leading '.')"


def _encoder_names(kind: str) -> list[str]:
    from cotrain.models.registry import encoder_names  # late import: importing cotrain.config loads no torch
    return encoder_names(kind)


def _dataset_names() -> list[str]:
    from cotrain.data import DATASETS  # late import: importing cotrain.config loads no torch
    return sorted(DATASETS)


@dataclass(frozen=True)
class _RunKeys:
    """The run's own keys; ``TrainConfig`` is these plus every registered method's options (after ``method``)."""

    # students
    cnn: str = option("mobilenet_v2", "CNN student encoder (DeepLabV3+)", one_of(lambda: _encoder_names("cnn")))
    vit: str = option("mit_b1", "ViT student encoder (SegFormer)", one_of(lambda: _encoder_names("vit")))
    weights: Optional[str] = option(None, "encoder weights: imagenet, none or a state-dict path")
    num_classes: Optional[int] = option(None, "classes K (default: the dataset's)", at_least(2))
    # method (its options come from the method registry: cotrain/methods)
    method: str = option("ours", "collaborative-learning method", one_of(lambda: sorted(METHODS)))
    aspp_rates: str = option("6,12,18", "DeepLabV3+ ASPP dilation rates (output stride 16: 6,12,18)",
                             parses(parse_rates, "three comma-separated integers >= 1"))
    update_order: str = option("joint", "joint: both students step on one forward; sequential: CNN steps, "
                               "recompute, ViT steps (DML's order)", one_of(lambda: list(UPDATE_ORDERS)))
    # This project's addition (docs/method.md, "Distillation warm-up"): the paper has no warm-up.
    kd_warmup_epochs: float = option(0.0, "epochs over which every KD term ramps linearly from 0 to full weight "
                                     "(0: off, the paper's form)", nonneg)
    init_from: Optional[str] = option(None, "start both students from this checkpoint's students (weights only: "
                                      "fresh optimisers and schedules); sweeps set it with --pretrain-epochs")
    # data
    dataset: str = option("builtin", "dataset", one_of(_dataset_names))
    data_root: Optional[str] = option(None, "dataset root (builtin: generated when absent)")
    allow_voc_train_only: bool = option(False, "let --preset paper train VOC on train.txt's 1,464 images when "
                                        "trainaug (10,582, python -m cotrain.data prepare-sbd) is missing")
    crop_size: int = option(128, "training crop side (multiple of 32)", at_least(32))
    train_scale: str = option("0.5,2.0", "range LOW,HIGH of the random rescale of training images before the crop",
                              parses(parse_scale, "LOW,HIGH with 0 < LOW <= HIGH, e.g. 0.5,2.0"))
    batch_size: int = option(4, "training batch size", at_least(1))
    num_workers: int = option(2, "data-loader worker processes", at_least(0))
    eval_protocol: Optional[str] = option(None, "evaluation protocol (default: the dataset's)",
                                          one_of(lambda: ["whole", "center_crop", "sliding", "resize"]))
    eval_size: Optional[str] = option(None, "evaluate whole images resized to HxW (image and labels; default: the "
                                      "dataset's protocol)",
                                      parses(parse_grid, "HxW, e.g. 180x240"))
    eval_split: str = option("val", "split to evaluate on (any split the dataset has, e.g. CamVid's test)")
    max_train_steps: Optional[int] = option(None, "cap on steps per epoch (smoke runs)", at_least(1))
    max_val_images: Optional[int] = option(None, "cap on validation images (smoke runs)", at_least(1))
    # optimisers (paper §4.1)
    cnn_lr: float = option(2.5e-3, "CNN SGD learning rate", positive)
    cnn_momentum: float = option(0.9, "CNN SGD momentum", fraction)
    cnn_weight_decay: float = option(5e-4, "CNN weight decay", nonneg)
    cnn_poly_power: float = option(0.9, "CNN poly decay power", nonneg)
    vit_lr: float = option(6e-5, "ViT AdamW learning rate", positive)
    vit_weight_decay: float = option(0.01, "ViT weight decay", nonneg)
    vit_poly_power: float = option(1.0, "ViT poly decay power", nonneg)
    # run
    preset: str = option("cpu", "preset of defaults", one_of(lambda: sorted(PRESETS)))
    epochs: int = option(4, "training epochs", at_least(1))
    seed: int = option(0, "random seed", _seed_range)
    out: str = option("results", "output folder (or URI) for runs")
    name: Optional[str] = option(None, "run name (default: derived from the config and time)", _plain_name)
    device: str = option("auto", "auto, cpu or cuda", one_of(lambda: ["auto", "cpu", "cuda"]))
    amp: bool = option(True, "bf16 autocast on CUDA (loss math stays fp32)")
    channels_last: bool = option(True, "channels_last memory format for the CNN on CUDA")
    compile: bool = option(False, "torch.compile both students")
    log_every: int = option(10, "steps between progress lines / finiteness checks", at_least(1))
    workers: int = option(1, "Ray Train workers (data parallel)", at_least(1))
    portable: bool = option(False, "CPU numerics identical on any x86 machine with AVX2: kernels pinned to AVX2, "
                            "threads fixed (README, Reproducibility)")
    cpu_threads: Optional[int] = option(None, "intra-op CPU threads (default: a Ray worker's CPU share, all cores "
                                        "with --direct; 1 with --portable)", at_least(1))
    # sweep bookkeeping, written into params.json for the table script
    table: Optional[str] = option(None, "paper table this run belongs to", cli=False)
    sweep: Optional[str] = option(None, "sweep script this run belongs to", cli=False)
    plugins: Optional[str] = option(None, "the COTRAIN_PLUGINS modules the run was made with (recorded when the "
                                    "config is resolved)", cli=False)


class _ConfigBehaviour:
    """Validation and conversions of ``TrainConfig`` (a dataclass generated below)."""

    def __post_init__(self) -> None:
        try:
            check_fields(self)
        except ConfigError as exc:  # e.g. method='cwd' from a plugin this process has not loaded
            raise ConfigError(f"{exc}{missing_plugins_hint(self.plugins)}") from None
        if self.crop_size % 32:
            raise ConfigError(f"crop_size={self.crop_size} is invalid: must be a multiple of 32 "
                              "(MiT stage 4 and DeepLabV3+ output stride)")
        region_grid = getattr(self, "region_grid", None)  # an option of the "ours" method
        grid = parse_grid(region_grid) if region_grid else (1, 1)
        if self.crop_size % grid[0] or self.crop_size % grid[1]:
            raise ConfigError(f"region_grid={region_grid} is invalid: both sides must divide "
                              f"crop_size={self.crop_size}")
        if self.update_order == "sequential" and self.workers > 1:
            raise ConfigError("update_order=sequential is invalid with workers > 1: allowed with one worker "
                              "(each step's two backward passes reach one student each, which DDP rejects)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Any:
        """Build from a flat dict; unknown keys fail naming the key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}{missing_plugins_hint(values.get('plugins'))}; "
                              f"allowed keys: {', '.join(sorted(known))}")
        return cls(**{k: _coerce(cls, k, v) for k, v in values.items()})

    def loss_options(self) -> dict[str, Any]:
        """Every method option, as keyword arguments of ``build_pair`` (the method takes its own)."""
        return {f.name: getattr(self, f.name) for f in option_fields()}

    def pair_options(self) -> dict[str, Any]:
        """Every keyword argument of ``build_pair`` besides encoders, classes, weights and method."""
        return {"aspp_rates": parse_rates(self.aspp_rates), **self.loss_options()}

    def replace(self, **changes: Any) -> Any:
        return type(self).from_dict({**self.to_dict(), **changes})


def missing_plugins_hint(recorded: Any) -> str:
    """`` (this run was made with COTRAIN_PLUGINS=...)`` when the recorded plugin modules are not all loaded here."""
    names = [n.strip() for n in recorded.split(",") if n.strip()] if isinstance(recorded, str) else []
    missing = [n for n in names if n not in plugin_modules()]
    if not missing:
        return ""
    return (f" (this run was made with {PLUGINS_ENV}={','.join(names)}; plugin module(s) {', '.join(missing)} "
            f"not loaded here: set {PLUGINS_ENV}={','.join(names)} with the module(s) on PYTHONPATH)")


def _config_fields() -> list[tuple[str, Any, dataclasses.Field]]:
    """(name, type, field) of the run keys with the method options inserted after ``method``."""
    def spec(f: dataclasses.Field) -> tuple[str, Any, dataclasses.Field]:
        return f.name, f.type, field(default=f.default, metadata=f.metadata)
    run = [spec(f) for f in fields(_RunKeys)]
    at = [name for name, _, _ in run].index("method") + 1
    clashes = sorted({f.name for f in option_fields()} & {name for name, _, _ in run})
    if clashes:
        raise TypeError(f"method option(s) {clashes} clash with run keys of the same name")
    return run[:at] + [spec(f) for f in option_fields()] + run[at:]


# Flat on purpose (the keys are also Tune's search space, the YAML and params.json), and generated:
# a method's options are declared once, beside the method, and appear here by registration.
TrainConfig = dataclasses.make_dataclass("TrainConfig", _config_fields(), bases=(_ConfigBehaviour,), frozen=True)
TrainConfig.__module__, TrainConfig.__qualname__ = __name__, "TrainConfig"  # pickled by reference (Ray)
TrainConfig.__doc__ = "Everything one co-training run needs; validated at construction."


PRESETS: dict[str, dict[str, Any]] = {
    # Paper §4.1: ImageNet encoders, 512 crops and batch 4 (its sentence names no dataset), 60 epochs (VOC), the
    # paper's optimisers. Poly decay, random scale 0.5-2.0 and flips are this project's choices (docs/recipes.md).
    "paper": {"weights": "imagenet", "crop_size": 512, "batch_size": 4, "epochs": 60, "num_workers": 4},
    # A short from-scratch CPU run (the α sweep in < 15 min on 2 cores): small crops, 60 steps an
    # epoch, larger learning rates than the paper's fine-tuning ones.
    "cpu": {"weights": None, "crop_size": 128, "batch_size": 4, "epochs": 4, "max_train_steps": 60, "num_workers": 1,
            "cnn_lr": 0.02, "vit_lr": 6e-4},
    # Seconds-long runs for CI: smallest students, a few steps.
    "smoke": {"weights": None, "vit": "mit_b0", "crop_size": 64, "batch_size": 2, "epochs": 2,
              "num_workers": 0, "max_train_steps": 2, "max_val_images": 4, "log_every": 1,
              "cnn_lr": 0.02, "vit_lr": 6e-4},
}


# Per-dataset values of a preset, on top of PRESETS[name] (the dataset comes from the file or flags).
DATASET_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        # Crop 512 and batch 4 stay the paper's ("We randomly crop images as 512×512 inputs trained with a batch
        # size of 4" names no dataset). Its epochs are for VOC only; these are this project's choice: as many
        # images as mmsegmentation's DeepLabV3+ Cityscapes schedule sees (80k iterations at batch 8 = 215 epochs
        # of 2,975 images) and CIRKD's CamVid one (40k at batch 8 = 870 epochs of 367 images).
        "cityscapes": {"epochs": 215},
        "camvid": {"epochs": 870},
    },
    "cpu": {
        # Real CamVid on 2 CPU cores in <= 30 min (docs/recipes.md): half-resolution training and evaluation.
        "camvid": {"crop_size": 128, "batch_size": 8, "train_scale": "0.25,0.75", "eval_size": "180x240",
                   "epochs": 40, "max_train_steps": None, "cnn_lr": 0.05, "vit_lr": 1e-3},
    },
}


def _coerce(cls: type, key: str, value: Any) -> Any:
    f = {f.name: f for f in fields(cls)}[key]
    if isinstance(value, str) and value.lower() in ("none", "null", "") and f.default is None:
        return None
    if base_type(f) is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML config file into a flat dict; a bad file is a ConfigError."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values")
    return values


def resolve(preset: Optional[str] = None, file_values: Optional[dict] = None,
            overrides: Optional[dict] = None) -> TrainConfig:
    """Defaults < preset < file < overrides, validated."""
    file_values, overrides = dict(file_values or {}), dict(overrides or {})
    name = overrides.get("preset") or file_values.get("preset") or preset or "cpu"
    if name not in PRESETS:
        raise ConfigError(f"preset={name!r} is invalid: allowed: {', '.join(sorted(PRESETS))}")
    dataset = overrides.get("dataset") or file_values.get("dataset") or "builtin"
    per_dataset = DATASET_PRESETS.get(name, {}).get(dataset, {})
    values = {**PRESETS[name], **per_dataset, **file_values, **overrides, "preset": name}
    values.setdefault("plugins", ",".join(plugin_modules()) or None)  # a saved config keeps its own
    paths = {key: absolute_path(values.get(key)) for key in PATH_KEYS}  # Ray's workers run in other folders
    return TrainConfig.from_dict({**values, **paths})


def is_uri(path: str) -> bool:
    """``s3://...``, ``gs://...``, ``ray://...``: not a local path."""
    return "://" in path


def absolute_path(path: Optional[str]) -> Optional[str]:
    """A local path made absolute (Ray's workers run in other folders); None and URIs unchanged."""
    if not isinstance(path, str) or not path or is_uri(path) or path.lower() in ("none", "null"):
        return path
    return os.path.abspath(os.path.expanduser(path))


def add_config_flags(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """One flag per config field (``--alpha``, ``--hfd/--no-hfd``...), default None = not given."""
    parser.add_argument("--config", type=Path, help="YAML file of config keys")
    for f in fields(TrainConfig):
        if f.name in exclude or not f.metadata.get("cli", True):
            continue
        flag = "--" + f.name.replace("_", "-")
        typ = base_type(f)
        if typ is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=f.metadata["help"])
        else:
            parser.add_argument(flag, type=_cli_type(typ, f), default=None, help=f.metadata["help"])


def _cli_type(typ: type, f: dataclasses.Field) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if f.default is None and text.lower() in ("none", "null"):
            return "none"  # kept as text: None means "flag not given", so --weights none must not become None
        return typ(text)
    parse.__name__ = typ.__name__  # argparse names it in "invalid int value: '1e20'"
    return parse


def config_from_args(args: argparse.Namespace, base: Optional[dict] = None) -> TrainConfig:
    """Resolve a TrainConfig from parsed flags (and ``--config`` file) on top of ``base``
    (a resumed run's saved config; preset defaults otherwise)."""
    file_values = load_yaml(args.config) if getattr(args, "config", None) else {}
    names = {f.name for f in fields(TrainConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return resolve(file_values={**(base or {}), **file_values}, overrides=overrides)
