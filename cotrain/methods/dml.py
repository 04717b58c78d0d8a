"""DML: "Deep Mutual Learning" (Zhang, Xiang, Hospedales, Lu, CVPR 2018).

L^C = CE^C + w·T²·KL(p^V ‖ p^C) and L^V = CE^V + w·T²·KL(p^C ‖ p^V), mean over valid pixels,
the other student detached.
"""
from __future__ import annotations

import torch

from cotrain.losses.kd import kd_kl_loss
from cotrain.methods.base import LogitKDOptions, Method, PairContext, register_method


@register_method
class DML(Method):
    """Each student mimics the other's pixel-wise class posterior."""

    name = "dml"
    term_names = ("kd_cnn", "kd_vit")
    Options = LogitKDOptions

    def terms(self, ctx: PairContext) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        o = self.options
        z_c, z_v = ctx.out_cnn.logits, ctx.out_vit.logits
        kd_c = o.kd_weight * kd_kl_loss(z_v, z_c, ctx.valid, o.temperature)
        kd_v = o.kd_weight * kd_kl_loss(z_c, z_v, ctx.valid, o.temperature)
        return kd_c, kd_v, {"kd_cnn": kd_c, "kd_vit": kd_v}
