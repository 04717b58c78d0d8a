"""IFVD: "Intra-class Feature Variation Distillation for Semantic Segmentation" (Wang et al., ECCV 2020).

Mutual form ("the CNN-based and ViT-based students guide each other as teachers", paper §4.1):
each student matches the other's detached IFV map
(cosine similarity of each position's last feature to its class prototype) with MSE,
L^S = CE^S + w·MSE(IFV^S, IFV^other). Prototypes per image as in CIRKD's implementation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cotrain.losses.kd import ifv_loss, ifv_map, labels_on_grid
from cotrain.methods.base import Method, PairContext, register_method


@register_method
class IFVD(Method):
    """Mutual intra-class feature variation distillation on the students' last features."""

    name = "ifvd"
    term_names = ("kd_cnn", "kd_vit")

    def terms(self, ctx: PairContext) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        grid = ctx.default_grid
        # Common grid = the ViT's H/32 one: CNN H/16 features are average-pooled to it, so both maps share positions.
        feat_c = F.adaptive_avg_pool2d(ctx.out_cnn.last.float(), grid)
        labels, valid = labels_on_grid(ctx.target, ctx.valid, grid)
        k = ctx.out_cnn.logits.shape[1]
        ifv_c = ifv_map(feat_c, labels, valid, k)
        ifv_v = ifv_map(ctx.out_vit.last, labels, valid, k)
        w = self.options.kd_weight
        kd_c, kd_v = w * ifv_loss(ifv_c, ifv_v, valid), w * ifv_loss(ifv_v, ifv_c, valid)
        return kd_c, kd_v, {"kd_cnn": kd_c, "kd_vit": kd_v}
