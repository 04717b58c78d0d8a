"""What every collaborative-learning method sees and returns, and the registry that names them."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Optional

import torch
from torch import nn

from cotrain.losses import log_probs, pixel_teacher_mask, region_teacher_mask
from cotrain.models.students import Student, StudentOutput
from cotrain.options import check_fields, nonneg, option, positive


@dataclass(frozen=True)
class NoOptions:
    """The options of a method that has none; every method's ``Options`` derives from it.

    A method declares its options once, as fields made by ``cotrain.options.option`` on its own
    ``Options`` dataclass; the run config, CLI flags, YAML keys, sweep cells and table columns are
    generated from them. Methods that share an option inherit it from one base (below).
    """

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class TemperatureOption(NoOptions):
    temperature: float = option(1.0, "KD temperature T (loss × T²)", positive)


@dataclass(frozen=True)
class LogitKDOptions(TemperatureOption):
    """The logit-KD baselines' options (Offline KD, DML, KDCL)."""

    kd_weight: float = option(1.0, "weight of a baseline's KD term (Offline KD, DML, KDCL)", nonneg)


@dataclass
class PairContext:
    """One step's forward results for both students, shared by all loss terms.

    Attributes:
        cnn, vit: the students (a method may call their stages, e.g. HFD).
        images: (N, 3, H, W) the step's input (offline teachers run on it).
        out_cnn, out_vit: their forward outputs.
        target: (N, H, W) labels; ``valid`` marks non-ignored pixels.
        ce_cnn, ce_vit: (N, H, W) per-pixel CE maps (0 at ignored pixels), computed once
            and shared by the CE loss and the teacher masks.
        log_p_cnn, log_p_vit: (N, K, H, W) log-softmax of the logits at T = 1, from which
            the CE maps came; pixel-wise KD reuses them (see ``log_probs_at``).
    """

    cnn: Student
    vit: Student
    images: torch.Tensor
    out_cnn: StudentOutput
    out_vit: StudentOutput
    target: torch.Tensor
    valid: torch.Tensor
    ce_cnn: torch.Tensor
    ce_vit: torch.Tensor
    log_p_cnn: torch.Tensor
    log_p_vit: torch.Tensor
    _region_cache: dict = field(default_factory=dict)

    def log_probs_at(self, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(CNN, ViT) log-probabilities at temperature T; T = 1 reuses the ones the CE came from."""
        if temperature == 1.0:
            return self.log_p_cnn, self.log_p_vit
        return log_probs(self.out_cnn.logits, temperature), log_probs(self.out_vit.logits, temperature)

    @cached_property
    def pixel_mask(self) -> torch.Tensor:
        """m: (N, H, W), the CNN teaches these pixels."""
        return pixel_teacher_mask(self.ce_cnn, self.ce_vit, self.valid)

    @property
    def default_grid(self) -> tuple[int, int]:
        """The region grid Ĥ×Ŵ by default: the ViT's stage-4 grid (H/32 × W/32)."""
        return tuple(self.out_vit.last.shape[-2:])

    def region_masks(self, grid: Optional[tuple[int, int]] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(m̂, region has valid pixels), each (N, h, w), cached per grid."""
        grid = tuple(grid or self.default_grid)
        if grid not in self._region_cache:
            self._region_cache[grid] = region_teacher_mask(self.ce_cnn, self.ce_vit, self.valid, grid)
        return self._region_cache[grid]

    def zero(self) -> torch.Tensor:
        return self.ce_cnn.new_zeros(())


class Method(nn.Module):
    """A collaborative-learning method: the KD parts of L^C and L^V.

    Trainable parts belong to a side: ``cnn_side`` modules are optimised with θ^C,
    ``vit_side`` ones with θ^V. Frozen parts (offline teachers) set ``requires_grad=False``.
    """

    name: ClassVar[str] = ""
    term_names: ClassVar[tuple[str, ...]] = ()
    Options: ClassVar[type] = NoOptions
    # The region grid of the reported ``cnn_teaches_regions`` share (None: the ViT's stage-4 grid).
    region_grid: Optional[tuple[int, int]] = None

    def __init__(self, cnn: Student, vit: Student, options: Any) -> None:
        super().__init__()
        self.options = options
        self.cnn_side = nn.ModuleDict()
        self.vit_side = nn.ModuleDict()

    def terms(self, ctx: PairContext) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Return (KD part of L^C, KD part of L^V, named terms) for one step."""
        raise NotImplementedError


METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method, and its options, selectable by name everywhere."""
    known = {f.name: (f, owner) for owner in METHODS.values() for f in dataclasses.fields(owner.Options)
             if owner.name != cls.name}
    for f in dataclasses.fields(cls.Options):
        other, owner = known.get(f.name, (f, cls))
        if (other.default, str(other.type), other.metadata["help"]) != (f.default, str(f.type), f.metadata["help"]):
            raise TypeError(f"option {f.name!r} of method {cls.name!r} differs from method {owner.name!r}'s; "
                            "declare it once, in an Options base both inherit")
    METHODS[cls.name] = cls
    return cls


def option_fields() -> list[dataclasses.Field]:
    """Every registered method's option fields, each name once, in registration order."""
    seen: dict[str, dataclasses.Field] = {}
    for cls in METHODS.values():
        for f in dataclasses.fields(cls.Options):
            seen.setdefault(f.name, f)
    return list(seen.values())


def options_for(method: str, values: dict[str, Any]) -> Any:
    """``method``'s ``Options`` from the values it declares (the other methods' keys are ignored)."""
    options = get_method(method).Options
    names = {f.name for f in dataclasses.fields(options)}
    return options(**{k: v for k, v in values.items() if k in names})


def get_method(name: str) -> type[Method]:
    """Look up a registered method; unknown names fail with the allowed ones."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; allowed: {', '.join(sorted(METHODS))}")
    return METHODS[name]

