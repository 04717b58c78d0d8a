"""KDCL: "Online Knowledge Distillation via Collaborative Learning" (Guo et al., CVPR 2020).

Both students distil from one detached soft target built from both students:
L^S = CE^S + w·T²·KL(p_t ‖ p^S), mean over valid pixels. ``kdcl_mode`` picks the target
(docs/method.md, "KDCL"):

- ``minlogit`` (default, KDCL-MinLogit): per pixel, each student's logits minus its
  ground-truth logit, element-wise minimum over the students.
- ``naive`` (KDCL-Naive): per image, the student with the lower cross-entropy is the
  teacher; its logits are everyone's target (it distils from itself: KL 0).
- ``logit_mean``: the plain average of the students' logits (not a KDCL variant; kept for comparison).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from cotrain.losses.kd import kd_kl_loss, mean_ensemble, minlogit_ensemble, naive_ensemble
from cotrain.methods.base import LogitKDOptions, Method, PairContext, register_method
from cotrain.options import one_of, option

KDCL_MODES = ("minlogit", "naive", "logit_mean")


@dataclass(frozen=True)
class KDCLOptions(LogitKDOptions):
    kdcl_mode: str = option("minlogit", "KDCL soft target", one_of(KDCL_MODES))


@register_method
class KDCL(Method):
    """Collaborative distillation from the students' ensemble soft target."""

    name = "kdcl"
    term_names = ("kd_cnn", "kd_vit")
    Options = KDCLOptions

    def terms(self, ctx: PairContext) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        o = self.options
        z_c, z_v = ctx.out_cnn.logits, ctx.out_vit.logits
        ens = self.ensemble([z_c, z_v], ctx)
        kd_c = o.kd_weight * kd_kl_loss(ens, z_c, ctx.valid, o.temperature)
        kd_v = o.kd_weight * kd_kl_loss(ens, z_v, ctx.valid, o.temperature)
        return kd_c, kd_v, {"kd_cnn": kd_c, "kd_vit": kd_v}

    def ensemble(self, logits: list[torch.Tensor], ctx: PairContext) -> torch.Tensor:
        """The detached soft-target logits, (N, K, H, W)."""
        mode = self.options.kdcl_mode
        if mode == "minlogit":
            return minlogit_ensemble(logits, ctx.target, ctx.valid)
        if mode == "naive":
            return naive_ensemble(logits, [ctx.ce_cnn, ctx.ce_vit], ctx.valid)
        return mean_ensemble(logits)
