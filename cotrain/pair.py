"""The student pair: both students, the method's Γ transforms, and one step's losses."""
from __future__ import annotations

from typing import Optional, Union

import torch
from torch import nn

from cotrain.losses import log_probs, masked_mean, nll_map
from cotrain.methods import get_method, option_fields, options_for
from cotrain.methods.base import Method, PairContext
from cotrain.models.students import ASPP_RATES_OS16, Student, Weights, build_student

SIDES = ("cnn", "vit")


class StudentPair(nn.Module):
    """A CNN student, a ViT student and a collaborative-learning method between them."""

    def __init__(self, cnn: Student, vit: Student, method: Method, num_classes: int,
                 ignore_index: int = 255) -> None:
        super().__init__()
        self.cnn, self.vit, self.method = cnn, vit, method
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.kd_weight = 1.0  # the KD parts' weight; below 1 only during a warm-up (``kd_warmup_epochs``)

    def forward(self, images: torch.Tensor, target: Optional[torch.Tensor] = None):
        """With ``target``: the step's loss dict (see ``losses``); without: both students' logits."""
        return self.predict(images) if target is None else self.losses(images, target)

    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) -> ((N, K, H, W) CNN logits, (N, K, H, W) ViT logits), fp32 even under autocast."""
        return self.cnn.predict(images), self.vit.predict(images)

    def losses(self, images: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """One co-training step's losses; each student runs its forward once.

        Returns:
            ``cnn`` and ``vit``: the totals L^C and L^V (with graph; the KD parts scaled by ``kd_weight``);
            every term, unscaled, as a detached scalar (``ce_cnn``, ``hfd_cnn``, ...); ``cnn_teaches_pixels`` and
            ``cnn_teaches_regions``: the share of valid pixels / regions where m = 1, for a method that selects
            the teacher (``Method.selects_teacher``: BSD) only.
        """
        ctx = self._context(images, target)
        ce_c, ce_v = masked_mean(ctx.ce_cnn, ctx.valid), masked_mean(ctx.ce_vit, ctx.valid)
        extra_c, extra_v, named = self.method.terms(ctx)
        w = self.kd_weight
        out = {"cnn": ce_c + w * extra_c, "vit": ce_v + w * extra_v, "ce_cnn": ce_c.detach(), "ce_vit": ce_v.detach()}
        out.update({k: v.detach() for k, v in named.items()})
        if self.method.selects_teacher:  # the direction of distillation exists only where a teacher is chosen
            region_mask, region_valid = ctx.region_masks(self.method.region_grid)
            out["cnn_teaches_pixels"] = _share(ctx.pixel_mask, ctx.valid)
            out["cnn_teaches_regions"] = _share(region_mask, region_valid)
        return out

    def _context(self, images: torch.Tensor, target: torch.Tensor) -> PairContext:
        out_c, out_v = self.cnn(images), self.vit(images)
        valid = target != self.ignore_index
        log_c, log_v = log_probs(out_c.logits), log_probs(out_v.logits)
        return PairContext(self.cnn, self.vit, images, out_c, out_v, target, valid,
                           nll_map(log_c, target, self.ignore_index), nll_map(log_v, target, self.ignore_index),
                           log_c, log_v)

    def parameters_of(self, side: str) -> list[nn.Parameter]:
        """Trainable parameters of one side: its student and its own Γs (what its optimizer gets)."""
        if side not in SIDES:
            raise ValueError(f"unknown side {side!r}; allowed: cnn, vit")
        modules = (getattr(self, side), getattr(self.method, f"{side}_side"))
        return [p for m in modules for p in m.parameters() if p.requires_grad]


def _share(mask: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return (mask.sum() / valid.sum().clamp(min=1)).detach().float()


def build_pair(cnn: str = "mobilenet_v2", vit: str = "mit_b1", num_classes: int = 21,
               weights: Union[Weights, tuple[Weights, Weights]] = None, method: str = "ours",
               ignore_index: int = 255, aspp_rates: tuple[int, ...] = ASPP_RATES_OS16,
               **loss_options) -> StudentPair:
    """Build a StudentPair.

    Args:
        cnn: CNN encoder (DeepLabV3+), e.g. ``mobilenet_v2``, ``resnet50``.
        vit: MiT encoder (SegFormer), e.g. ``mit_b1``.
        num_classes: K.
        weights: ``"imagenet"``, ``None`` or a local state-dict path, for both students
            or as a ``(cnn, vit)`` tuple.
        method: a registered method name (``ours``, ``vanilla``, ...).
        aspp_rates: the CNN's ASPP dilation rates (DeepLabV3+ at output stride 16: 6, 12, 18).
        **loss_options: any registered method's options (``alpha``, ``beta``, ``gamma``, ``temperature``,
            ``hfd``, ``region_grid="4x4"``, ``kdcl_mode``...); ``method`` takes the ones it declares.
    """
    allowed = sorted(f.name for f in option_fields())
    unknown = set(loss_options) - set(allowed)
    if unknown:
        raise ValueError(f"unknown loss option(s) {sorted(unknown)}; allowed: {allowed}")
    if num_classes < 2:
        raise ValueError(f"num_classes={num_classes} is invalid; need at least 2")
    cnn_w, vit_w = weights if isinstance(weights, tuple) else (weights, weights)
    cnn_student = build_student("cnn", cnn, num_classes, cnn_w, aspp_rates)
    vit_student = build_student("vit", vit, num_classes, vit_w)
    options = options_for(method, loss_options)
    return StudentPair(cnn_student, vit_student, get_method(method)(cnn_student, vit_student, options),
                       num_classes, ignore_index)
