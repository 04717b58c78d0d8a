"""What every collaborative-learning method sees and returns (torch; the registry is ``registry.py``, torch-free)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Optional

import torch
from torch import nn

from cotrain.losses import log_probs, pixel_teacher_mask, region_teacher_mask
from cotrain.methods.options import NoOptions
from cotrain.methods.registry import register_method
from cotrain.models.students import Student, StudentOutput

# Re-exported: a plugin imports its bases and decorator from here, beside Method.
__all__ = ["Method", "NoOptions", "PairContext", "register_method"]


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
    A built-in method is declared (name, ``Options``, table label) in its package's ``__init__``;
    its ``name`` and ``Options`` here must be the declared ones. A plugin's ``@register_method`` reads them here.
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""  # its row label in tables (default: ``name``)
    term_names: ClassVar[tuple[str, ...]] = ()
    Options: ClassVar[type] = NoOptions
    # The region grid of the reported ``cnn_teaches_regions`` share (None: the ViT's stage-4 grid).
    region_grid: Optional[tuple[int, int]] = None

    def __init__(self, cnn: Student, vit: Student, options: Any) -> None:
        super().__init__()
        self.options = options
        self.cnn_side = nn.ModuleDict()
        self.vit_side = nn.ModuleDict()

    @property
    def selects_teacher(self) -> bool:
        """Whether this method, with its options, lets the better student teach per pixel or region (BSD). Only
        then does a step report ``cnn_teaches_pixels``/``cnn_teaches_regions`` (the distillation-direction figure)."""
        return False

    def terms(self, ctx: PairContext) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Return (KD part of L^C, KD part of L^V, named terms) for one step."""
        raise NotImplementedError
