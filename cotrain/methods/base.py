"""What every collaborative-learning method sees and returns, and the registry that names them."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import ClassVar, Optional

import torch
from torch import nn

from cotrain.losses import log_probs, pixel_teacher_mask, region_teacher_mask
from cotrain.models.students import Student, StudentOutput


@dataclass(frozen=True)
class LossOptions:
    """Options of every method's losses (each method reads the ones it needs).

    Defaults are docs/method.md's: α = 1, β = 0.1, γ = 1, T = 1, all switches on, D̂ = 256,
    region grid = the MiT stage-4 grid (``None``), BSD means over the batch; the baselines'
    defaults are their references' (IFVD: λ_ifv = 200 on decoder features plus λ_kd = 10 pixel KD;
    KDCL: MinLogit).
    """

    alpha: float = 1.0
    beta: float = 0.1
    gamma: float = 1.0
    temperature: float = 1.0
    hfd: bool = True
    bsd_region: bool = True
    bsd_pixel: bool = True
    region_dim: int = 256
    region_grid: Optional[tuple[int, int]] = None
    bsd_norm: str = "batch"
    kd_weight: float = 1.0
    kdcl_mode: str = "minlogit"
    ifvd_weight: float = 200.0
    ifvd_kd_weight: float = 10.0
    ifvd_features: str = "decoder"
    teacher_cnn: Optional[str] = None
    teacher_vit: Optional[str] = None

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


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

    def __init__(self, cnn: Student, vit: Student, options: LossOptions) -> None:
        super().__init__()
        self.options = options
        self.cnn_side = nn.ModuleDict()
        self.vit_side = nn.ModuleDict()

    def terms(self, ctx: PairContext) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Return (KD part of L^C, KD part of L^V, named terms) for one step."""
        raise NotImplementedError


METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make a method selectable by ``cls.name`` everywhere."""
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    """Look up a registered method; unknown names fail with the allowed ones."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; allowed: {', '.join(sorted(METHODS))}")
    return METHODS[name]

