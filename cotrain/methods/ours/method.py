"""HFD + BSD's losses and Γ transforms (declared, with its options, in this package's ``__init__``)."""
from __future__ import annotations

import torch

from cotrain.losses import hfd_loss, pixel_terms_from_log_probs, region_terms
from cotrain.methods.base import Method, PairContext
from cotrain.methods.ours import OursOptions
from cotrain.models import Gamma, Student
from cotrain.options import parse_grid


class Ours(Method):
    """Heterogeneous feature distillation + bidirectional selective distillation."""

    name = "ours"
    term_names = ("hfd_cnn", "hfd_vit", "bsd_r_cnn", "bsd_r_vit", "bsd_p_cnn", "bsd_p_vit")
    Options = OursOptions

    def __init__(self, cnn: Student, vit: Student, options: OursOptions) -> None:
        super().__init__(cnn, vit, options)
        self.region_grid = parse_grid(options.region_grid) if options.region_grid else None
        cnn_low, _, cnn_last = cnn.channels
        vit_low, _, vit_last = vit.channels
        # Γs exist only for the switches that use them, so every parameter gets a gradient (DDP).
        if options.hfd:
            self.cnn_side["gamma_low"] = Gamma(cnn_low, vit_low)   # Γ_1^C: CNN F_1 -> MiT stage-1 channels
            self.vit_side["gamma_low"] = Gamma(vit_low, cnn_low)   # Γ_1^V: MiT F_1 -> CNN F_1 channels
        if options.bsd_region:
            self.cnn_side["gamma_last"] = Gamma(cnn_last, options.region_dim)  # Γ_l^C -> D̂
            self.vit_side["gamma_last"] = Gamma(vit_last, options.region_dim)  # Γ_l^V -> D̂

    @property
    def selects_teacher(self) -> bool:
        return self.options.bsd_region or self.options.bsd_pixel

    def terms(self, ctx: PairContext) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        o, zero = self.options, ctx.zero()
        hfd_c, hfd_v = self.hfd(ctx) if o.hfd else (zero, zero)
        reg_c, reg_v = self.region(ctx) if o.bsd_region else (zero, zero)
        pix_c, pix_v = (pixel_terms_from_log_probs(*ctx.log_probs_at(o.temperature), ctx.pixel_mask, ctx.valid,
                                                   o.temperature, o.bsd_norm, o.bsd_kl)
                        if o.bsd_pixel else (zero, zero))
        extra_c = o.beta * hfd_c + o.gamma * (reg_c + o.alpha * pix_c)
        extra_v = o.beta * hfd_v + o.gamma * (reg_v + o.alpha * pix_v)
        named = {"hfd_cnn": hfd_c, "hfd_vit": hfd_v, "bsd_r_cnn": reg_c, "bsd_r_vit": reg_v,
                 "bsd_p_cnn": pix_c, "bsd_p_vit": pix_v}
        return extra_c, extra_v, named

    def hfd(self, ctx: PairContext) -> tuple[torch.Tensor, torch.Tensor]:
        """HFD^C = 1 − cos(Attn_V(Γ_1^C(F_1^C)), F_2^V) and HFD^V = 1 − cos(MLP_C(Γ_1^V(F_1^V)), F_2^C)."""
        out_c, out_v = ctx.out_cnn, ctx.out_vit
        low_c = self.cnn_side["gamma_low"](out_c.low, out_v.low.shape[-2:])
        low_v = self.vit_side["gamma_low"](out_v.low, out_c.low.shape[-2:])
        # The other student's stage runs frozen: its parameters get no gradient from this loss.
        hfd_c = hfd_loss(ctx.vit.run_stride8_stage(low_c, frozen=True), out_v.mid)
        hfd_v = hfd_loss(ctx.cnn.run_stride8_stage(low_v, frozen=True), out_c.mid)
        return hfd_c, hfd_v

    def region(self, ctx: PairContext) -> tuple[torch.Tensor, torch.Tensor]:
        """Region-wise BSD on Γ_l-transformed last features over the region grid."""
        grid = tuple(self.region_grid or ctx.default_grid)
        feat_c = self.cnn_side["gamma_last"](ctx.out_cnn.last, grid)
        feat_v = self.vit_side["gamma_last"](ctx.out_vit.last, grid)
        cnn_teaches, region_valid = ctx.region_masks(grid)
        return region_terms(feat_c, feat_v, cnn_teaches, region_valid, self.options.bsd_norm)
