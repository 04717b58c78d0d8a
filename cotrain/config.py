"""The run configuration: one flat, frozen, validated dataclass, plus presets.

Flat on purpose: the same keys are Ray Tune's search space, the YAML file, the CLI flags
and the ``params.json`` the table script reads. Resolution order:
field defaults < preset < config file < command-line flags.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from cotrain.losses.bsd import BSD_NORMS
from cotrain.methods import METHODS
from cotrain.methods.ifvd import IFVD_FEATURES
from cotrain.methods.kdcl import KDCL_MODES
from cotrain.models.registry import encoder_names

UPDATE_ORDERS = ("joint", "sequential")


class ConfigError(ValueError):
    """A configuration value is not allowed; the message is one line naming it."""


def _nonneg(v: float) -> Optional[str]:
    return None if math.isfinite(v) and v >= 0 else "must be a finite number >= 0"


def _positive(v: float) -> Optional[str]:
    return None if math.isfinite(v) and v > 0 else "must be a finite number > 0"


def _one_of(options: Callable[[], list[str]]) -> Callable[[Any], Optional[str]]:
    def check(v: Any) -> Optional[str]:
        allowed = options()
        return None if v in allowed else f"allowed: {', '.join(map(str, allowed))}"
    return check


def _at_least(n: int) -> Callable[[int], Optional[str]]:
    return lambda v: None if v >= n else f"must be >= {n}"


def _seed_range(v: int) -> Optional[str]:
    return None if 0 <= v < 2**32 else "must be an integer in [0, 2**32)"


def _plain_name(v: str) -> Optional[str]:
    # The run folder is <out>/<name>: anything but a plain folder name could write elsewhere.
    ok = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+=-]*", v) is not None
    return None if ok else "must be a plain folder name (letters, digits, . _ + = -; no '/' or leading '.')"


def _fraction(v: float) -> Optional[str]:
    return None if 0 <= v < 1 else "must be in [0, 1)"


def parse_grid(text: str) -> Optional[tuple[int, int]]:
    """``"4x8"`` -> (4, 8); None when malformed."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def parse_rates(text: str) -> Optional[tuple[int, int, int]]:
    """``"6,12,18"`` -> (6, 12, 18); None when malformed."""
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        return None
    return tuple(int(p) for p in parts)


def parse_scale(text: str) -> Optional[tuple[float, float]]:
    """``"0.5,2.0"`` -> (0.5, 2.0); None when malformed or not 0 < low <= high."""
    try:
        low, high = (float(p) for p in text.split(","))
    except ValueError:
        return None
    return (low, high) if 0 < low <= high else None


def _dataset_names() -> list[str]:
    from cotrain.data import DATASETS  # late import: the data package is heavier
    return sorted(DATASETS)


def _f(default: Any, help: str, check: Optional[Callable[[Any], Optional[str]]] = None, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, "check": check, **kw})


@dataclass(frozen=True)
class TrainConfig:
    """Everything one co-training run needs; validated at construction."""

    # students
    cnn: str = _f("mobilenet_v2", "CNN student encoder (DeepLabV3+)", _one_of(lambda: encoder_names("cnn")))
    vit: str = _f("mit_b1", "ViT student encoder (SegFormer)", _one_of(lambda: encoder_names("vit")))
    weights: Optional[str] = _f(None, "encoder weights: imagenet, none or a state-dict path")
    num_classes: Optional[int] = _f(None, "classes K (default: the dataset's)", _at_least(2))
    # method and losses (docs/method.md defaults)
    method: str = _f("ours", "collaborative-learning method", _one_of(lambda: sorted(METHODS)))
    alpha: float = _f(1.0, "weight of pixel-wise BSD inside BSD", _nonneg)
    beta: float = _f(0.1, "weight of HFD", _nonneg)
    gamma: float = _f(1.0, "weight of BSD", _nonneg)
    temperature: float = _f(1.0, "KD temperature T (loss × T²)", _positive)
    hfd: bool = _f(True, "heterogeneous feature distillation")
    bsd_region: bool = _f(True, "region-wise BSD")
    bsd_pixel: bool = _f(True, "pixel-wise BSD")
    region_dim: int = _f(256, "common channel count D̂ of region features", _at_least(1))
    region_grid: Optional[str] = _f(None, "region grid HxW of region-wise BSD, e.g. 4x4 (default: MiT stage-4 grid)",
                                    lambda v: None if parse_grid(v) else "must be HxW with H, W >= 1, e.g. 4x4")
    bsd_norm: str = _f("batch", "BSD masked means over the batch's or each image's selected positions",
                       _one_of(lambda: list(BSD_NORMS)))
    aspp_rates: str = _f("6,12,18", "DeepLabV3+ ASPP dilation rates (output stride 16: 6,12,18)",
                         lambda v: None if parse_rates(v) else "must be three comma-separated integers >= 1")
    kd_weight: float = _f(1.0, "weight of a baseline's KD term (Offline KD, DML, KDCL)", _nonneg)
    kdcl_mode: str = _f("minlogit", "KDCL soft target", _one_of(lambda: list(KDCL_MODES)))
    ifvd_weight: float = _f(200.0, "IFVD: weight λ_ifv of the IFV term", _nonneg)
    ifvd_kd_weight: float = _f(10.0, "IFVD: weight of its pixel-wise KD term", _nonneg)
    ifvd_features: str = _f("decoder", "IFVD features: decoder (before the classifier) or last (encoder)",
                            _one_of(lambda: list(IFVD_FEATURES)))
    update_order: str = _f("joint", "joint: both students step on one forward; sequential: CNN steps, "
                           "recompute, ViT steps (DML's order)", _one_of(lambda: list(UPDATE_ORDERS)))
    teacher_cnn: Optional[str] = _f(None, "offline KD: frozen CNN teacher checkpoint (teaches the ViT)")
    teacher_vit: Optional[str] = _f(None, "offline KD: frozen ViT teacher checkpoint (teaches the CNN)")
    # data
    dataset: str = _f("builtin", "dataset", _one_of(_dataset_names))
    data_root: Optional[str] = _f(None, "dataset root (builtin: generated when absent)")
    crop_size: int = _f(128, "training crop side (multiple of 32)", _at_least(32))
    train_scale: str = _f("0.5,2.0", "range LOW,HIGH of the random rescale of training images before the crop",
                          lambda v: None if parse_scale(v) else "must be LOW,HIGH with 0 < LOW <= HIGH, e.g. 0.5,2.0")
    batch_size: int = _f(4, "training batch size", _at_least(1))
    num_workers: int = _f(2, "data-loader worker processes", _at_least(0))
    eval_protocol: Optional[str] = _f(None, "evaluation protocol (default: the dataset's)",
                                      _one_of(lambda: ["whole", "center_crop", "sliding", "resize"]))
    eval_size: Optional[str] = _f(None, "evaluate whole images resized to HxW (image and labels; default: the "
                                  "dataset's protocol)",
                                  lambda v: None if parse_grid(v) else "must be HxW, e.g. 180x240")
    eval_split: str = _f("val", "split to evaluate on (any split the dataset has, e.g. CamVid's test)")
    max_train_steps: Optional[int] = _f(None, "cap on steps per epoch (smoke runs)", _at_least(1))
    max_val_images: Optional[int] = _f(None, "cap on validation images (smoke runs)", _at_least(1))
    # optimisers (paper §4.1)
    cnn_lr: float = _f(2.5e-3, "CNN SGD learning rate", _positive)
    cnn_momentum: float = _f(0.9, "CNN SGD momentum", _fraction)
    cnn_weight_decay: float = _f(5e-4, "CNN weight decay", _nonneg)
    cnn_poly_power: float = _f(0.9, "CNN poly decay power", _nonneg)
    vit_lr: float = _f(6e-5, "ViT AdamW learning rate", _positive)
    vit_weight_decay: float = _f(0.01, "ViT weight decay", _nonneg)
    vit_poly_power: float = _f(1.0, "ViT poly decay power", _nonneg)
    # run
    preset: str = _f("cpu", "preset of defaults", _one_of(lambda: sorted(PRESETS)))
    epochs: int = _f(4, "training epochs", _at_least(1))
    seed: int = _f(0, "random seed", _seed_range)
    out: str = _f("results", "output folder (or URI) for runs")
    name: Optional[str] = _f(None, "run name (default: derived from the config and time)", _plain_name)
    device: str = _f("auto", "auto, cpu or cuda", _one_of(lambda: ["auto", "cpu", "cuda"]))
    amp: bool = _f(True, "bf16 autocast on CUDA (loss math stays fp32)")
    channels_last: bool = _f(True, "channels_last memory format for the CNN on CUDA")
    compile: bool = _f(False, "torch.compile both students")
    log_every: int = _f(10, "steps between progress lines / finiteness checks", _at_least(1))
    workers: int = _f(1, "Ray Train workers (data parallel)", _at_least(1))
    # sweep bookkeeping, written into params.json for the table script
    table: Optional[str] = _f(None, "paper table this run belongs to", cli=False)
    sweep: Optional[str] = _f(None, "sweep script this run belongs to", cli=False)

    def __post_init__(self) -> None:
        for f in fields(self):
            check_field(f, getattr(self, f.name))
        if self.crop_size % 32:
            raise ConfigError(f"crop_size={self.crop_size} is invalid: must be a multiple of 32 "
                              "(MiT stage 4 and DeepLabV3+ output stride)")
        grid = parse_grid(self.region_grid) if self.region_grid else (1, 1)
        if self.crop_size % grid[0] or self.crop_size % grid[1]:
            raise ConfigError(f"region_grid={self.region_grid} is invalid: both sides must divide "
                              f"crop_size={self.crop_size}")
        if self.update_order == "sequential" and self.workers > 1:
            raise ConfigError("update_order=sequential is invalid with workers > 1: allowed with one worker "
                              "(each step's two backward passes reach one student each, which DDP rejects)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a flat dict; unknown keys fail naming the key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s) {unknown}; allowed keys: {', '.join(sorted(known))}")
        return cls(**{k: _coerce(cls, k, v) for k, v in values.items()})

    def loss_options(self) -> dict[str, Any]:
        """The ``LossOptions`` part, parsed, as keyword arguments of ``build_pair``."""
        from cotrain.methods import LossOptions
        values = {k: getattr(self, k) for k in LossOptions.names() if hasattr(self, k)}
        return {**values, "region_grid": parse_grid(self.region_grid) if self.region_grid else None}

    def pair_options(self) -> dict[str, Any]:
        """Every keyword argument of ``build_pair`` besides encoders, classes, weights and method."""
        return {"aspp_rates": parse_rates(self.aspp_rates), **self.loss_options()}

    def replace(self, **changes: Any) -> "TrainConfig":
        return TrainConfig.from_dict({**self.to_dict(), **changes})


PRESETS: dict[str, dict[str, Any]] = {
    # Paper §4.1: ImageNet encoders, 512 crops, batch 4, 60 epochs (VOC), the paper's optimisers.
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
        # The paper is silent on Cityscapes' recipe: mmsegmentation's DeepLabV3+ Cityscapes schedule (80k
        # iterations at batch 8 = 215 epochs of 2,975 images), with a square 768 crop (ours are square;
        # mmseg's 512x1024 has the same pixel count). A choice of this project, not the paper's.
        "cityscapes": {"crop_size": 768, "batch_size": 8, "epochs": 215},
        # The paper is silent on CamVid's recipe: CIRKD's CamVid setting (360x360 crops -> 352, a multiple
        # of 32; batch 8; its default 40k iterations = 870 epochs of 367 images). A choice, not the paper's.
        "camvid": {"crop_size": 352, "batch_size": 8, "epochs": 870},
    },
    "cpu": {
        # Real CamVid on 2 CPU cores in <= 30 min (docs/recipes.md): half-resolution training and evaluation.
        "camvid": {"crop_size": 128, "batch_size": 8, "train_scale": "0.25,0.75", "eval_size": "180x240",
                   "epochs": 40, "max_train_steps": None, "cnn_lr": 0.05, "vit_lr": 1e-3},
    },
}


def check_field(f: dataclasses.Field, value: Any) -> None:
    """Validate one field's type and range; raise ConfigError naming it."""
    if value is None:
        if f.default is None:
            return
        raise ConfigError(f"{f.name}=None is invalid: a value is required")
    expected = _base_type(f)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{f.name}={value!r} is invalid: expected {expected.__name__}")
    problem = f.metadata.get("check") and f.metadata["check"](value)
    if problem:
        raise ConfigError(f"{f.name}={value!r} is invalid: {problem}")


def _base_type(f: dataclasses.Field) -> type:
    text = str(f.type)
    for name, typ in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if name in text:
            return typ
    raise TypeError(f"unsupported config type {text}")


def _coerce(cls: type, key: str, value: Any) -> Any:
    f = {f.name: f for f in fields(cls)}[key]
    if isinstance(value, str) and value.lower() in ("none", "null", "") and f.default is None:
        return None
    if _base_type(f) is float and isinstance(value, int) and not isinstance(value, bool):
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
    return TrainConfig.from_dict({**values, "data_root": absolute_path(values.get("data_root"))})


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
        typ = _base_type(f)
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
