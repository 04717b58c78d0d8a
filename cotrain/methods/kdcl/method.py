"""KDCL's losses and soft targets (declared, with its options, in this package's ``__init__``)."""
from __future__ import annotations

import torch

from cotrain.losses.kd import kd_kl_loss, mean_ensemble, minlogit_ensemble, naive_ensemble
from cotrain.methods.base import Method, PairContext
from cotrain.methods.kdcl import KDCLOptions


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
