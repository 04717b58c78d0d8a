"""DML's losses (declared, with its options, in this package's ``__init__``)."""
from __future__ import annotations

import torch

from cotrain.losses.kd import kd_kl_loss
from cotrain.methods.base import Method, PairContext
from cotrain.methods.options import LogitKDOptions


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
