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

from cotrain.methods.options import TemperatureOption
from cotrain.methods.registry import declare_method
from cotrain.options import nonneg, one_of, option

IFVD_FEATURES = ("decoder", "last")


@dataclass(frozen=True)
class IFVDOptions(TemperatureOption):
    """The IFVD reference's weights: λ_ifv = 200 on decoder features plus λ_kd = 10 pixel KD."""

    ifvd_weight: float = option(200.0, "IFVD: weight λ_ifv of the IFV term", nonneg)
    ifvd_kd_weight: float = option(10.0, "IFVD: weight of its pixel-wise KD term", nonneg)
    ifvd_features: str = option("decoder", "IFVD features: decoder (before the classifier) or last (encoder)",
                                one_of(IFVD_FEATURES))


declare_method("ifvd", "cotrain.methods.ifvd.method:IFVD", IFVDOptions, "IFVD")
