"""IFVD: "Intra-class Feature Variation Distillation for Semantic Segmentation" (Wang et al., ECCV 2020).

Mutual form ("the CNN-based and ViT-based students guide each other as teachers", paper §4.1),
with the IFVD reference implementation's objective and weights (docs/method.md, "IFVD"):
L^S = CE^S + λ_ifv·MSE(IFV^S, IFV^other) + λ_kd·KL(p^other ‖ p^S), the other student detached,
λ_ifv = 200 and λ_kd = 10 at T = 1. The IFV map is the cosine similarity of each position's
feature to its ground-truth class prototype in the same image. Features: the decoder outputs
(right before the classifier; both students' are at H/4) by default, or ``ifvd_features=last``:
the last encoder stage, CNN average-pooled to the ViT's H/32 grid. The reference's adversarial
holistic term is not included.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cotrain.losses.kd import ifv_loss, ifv_map, kd_kl_loss, labels_on_grid
from cotrain.methods.base import Method, PairContext, TemperatureOption, register_method
from cotrain.options import nonneg, one_of, option

IFVD_FEATURES = ("decoder", "last")


@dataclass(frozen=True)
class IFVDOptions(TemperatureOption):
    """The IFVD reference's weights: λ_ifv = 200 on decoder features plus λ_kd = 10 pixel KD."""

    ifvd_weight: float = option(200.0, "IFVD: weight λ_ifv of the IFV term", nonneg)
    ifvd_kd_weight: float = option(10.0, "IFVD: weight of its pixel-wise KD term", nonneg)
    ifvd_features: str = option("decoder", "IFVD features: decoder (before the classifier) or last (encoder)",
                                one_of(IFVD_FEATURES))


@register_method
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
