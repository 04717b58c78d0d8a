"""IFVD: "Intra-class Feature Variation Distillation for Semantic Segmentation" (Wang et al., ECCV 2020).

Offline by default, as the ICCV paper groups it ("for Offline KD and IFVD approaches, the CNN-based and
ViT-based students guide each other as teachers"; "the offline KD methods, Offline KD and IFVD", §4.1-4.2):
each student distils from the frozen Vanilla-trained student of the *other* architecture (``teacher_vit``
teaches the CNN, ``teacher_cnn`` the ViT), handed over like Offline KD's. ``ifvd_mode=mutual`` makes the two
live students each other's (detached) teachers instead. With the IFVD reference's objective and effective
weights (docs/method.md, "IFVD"): L^S = CE^S + λ_ifv·MSE(IFV^S, IFV^T) + λ_kd·KL(p^T ‖ p^S)/K, λ_ifv = 200,
λ_kd = 10 at T = 1, the /K being its ``nn.KLDivLoss()`` mean over classes. The IFV map is the cosine similarity
of each position's feature to its ground-truth class prototype in the same image. Features: the decoder outputs
(right before the classifier; both students' are at H/4) by default, or ``ifvd_features=last``: the last
encoder stage, CNN average-pooled to the ViT's H/32 grid. The reference's adversarial term is not included.
"""
from __future__ import annotations

from dataclasses import dataclass

from cotrain.methods.options import TeacherOptions, TemperatureOption
from cotrain.methods.registry import declare_method
from cotrain.options import nonneg, one_of, option

IFVD_FEATURES = ("decoder", "last")
IFVD_MODES = ("offline", "mutual")


@dataclass(frozen=True)
class IFVDOptions(TeacherOptions, TemperatureOption):
    """The IFVD reference's weights (λ_ifv = 200 on decoder features, λ_kd = 10 on its class-mean pixel KL),
    offline from frozen Vanilla teachers unless ``ifvd_mode=mutual``."""

    # The ICCV paper counts IFVD among its offline methods (§4.1, §4.2): frozen Vanilla teachers by default.
    ifvd_mode: str = option("offline", "IFVD: offline (frozen Vanilla teachers teacher_cnn/teacher_vit, the paper's) "
                            "or mutual (the live students teach each other)", one_of(IFVD_MODES))
    ifvd_weight: float = option(200.0, "IFVD: weight λ_ifv of the IFV term", nonneg)
    ifvd_kd_weight: float = option(10.0, "IFVD: weight λ_kd of its pixel-wise KD term (a KL averaged over "
                                   "classes, as the reference's nn.KLDivLoss())", nonneg)
    ifvd_features: str = option("decoder", "IFVD features: decoder (before the classifier) or last (encoder)",
                                one_of(IFVD_FEATURES))

    def needs_teachers(self) -> bool:
        return self.ifvd_mode == "offline"


declare_method("ifvd", "cotrain.methods.ifvd.method:IFVD", IFVDOptions, "IFVD")
