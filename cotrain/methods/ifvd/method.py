"""IFVD's losses: IFV maps and pixel KD (declared, with its options, in this package's ``__init__``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cotrain.losses.kd import ifv_loss, ifv_map, kd_kl_loss, labels_on_grid
from cotrain.methods.base import Method, PairContext
from cotrain.methods.ifvd import IFVDOptions


class IFVD(Method):
    """Mutual intra-class feature variation distillation plus pixel-wise KD."""

    name = "ifvd"
    term_names = ("kd_cnn", "kd_vit", "ifv_cnn", "ifv_vit", "pkd_cnn", "pkd_vit")
    Options = IFVDOptions

    def terms(self, ctx: PairContext) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        o = self.options
        ifv_c, ifv_v = self.ifv_terms(ctx)
        pkd_c = kd_kl_loss(ctx.out_vit.logits, ctx.out_cnn.logits, ctx.valid, o.temperature)
        pkd_v = kd_kl_loss(ctx.out_cnn.logits, ctx.out_vit.logits, ctx.valid, o.temperature)
        kd_c = o.ifvd_weight * ifv_c + o.ifvd_kd_weight * pkd_c
        kd_v = o.ifvd_weight * ifv_v + o.ifvd_kd_weight * pkd_v
        return kd_c, kd_v, {"kd_cnn": kd_c, "kd_vit": kd_v, "ifv_cnn": ifv_c, "ifv_vit": ifv_v,
                            "pkd_cnn": pkd_c, "pkd_vit": pkd_v}

    def ifv_terms(self, ctx: PairContext) -> tuple[torch.Tensor, torch.Tensor]:
        """(MSE of the CNN's IFV map to the ViT's, and the converse), unweighted."""
        feat_c, feat_v = self.features(ctx)
        grid = tuple(feat_v.shape[-2:])
        labels, valid = labels_on_grid(ctx.target, ctx.valid, grid)
        k = ctx.out_cnn.logits.shape[1]
        map_c, map_v = ifv_map(feat_c, labels, valid, k), ifv_map(feat_v, labels, valid, k)
        return ifv_loss(map_c, map_v), ifv_loss(map_v, map_c)

    def features(self, ctx: PairContext) -> tuple[torch.Tensor, torch.Tensor]:
        """(CNN, ViT) features on one common grid."""
        if self.options.ifvd_features == "decoder":
            return ctx.out_cnn.decoded, ctx.out_vit.decoded
        # Last encoder stage: CNN H/16 features average-pooled to the ViT's H/32 grid, so both maps share positions.
        return F.adaptive_avg_pool2d(ctx.out_cnn.last.float(), ctx.default_grid), ctx.out_vit.last
