"""Offline KD's losses and frozen teachers (declared, with its options, in this package's ``__init__``)."""
from __future__ import annotations

import torch

from cotrain.losses.kd import kd_kl_loss
from cotrain.methods.base import Method, PairContext
from cotrain.methods.offline_kd import OfflineKDOptions
from cotrain.methods.teachers import FrozenTeachers, student_classes
from cotrain.models import Student


class OfflineKD(Method):
    """Hinton KD from frozen Vanilla-trained teachers of the other architecture."""

    name = "offline_kd"
    term_names = ("kd_cnn", "kd_vit")
    Options = OfflineKDOptions

    def __init__(self, cnn: Student, vit: Student, options: OfflineKDOptions) -> None:
        super().__init__(cnn, vit, options)
        self.teachers = FrozenTeachers(self.name, options.teacher_cnn, options.teacher_vit, student_classes(cnn))

    def terms(self, ctx: PairContext) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        o, zero = self.options, ctx.zero()
        z_t = self.teacher_logits(ctx.images)
        kd_c = o.kd_weight * kd_kl_loss(z_t["of_cnn"], ctx.out_cnn.logits, ctx.valid, o.temperature) \
            if "of_cnn" in z_t else zero
        kd_v = o.kd_weight * kd_kl_loss(z_t["of_vit"], ctx.out_vit.logits, ctx.valid, o.temperature) \
            if "of_vit" in z_t else zero
        return kd_c, kd_v, {"kd_cnn": kd_c, "kd_vit": kd_v}

    def teacher_logits(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each teacher's (N, K, H, W) logits on this step's images, computed once per step."""
        return {role: out.logits for role, out in self.teachers.outputs(images).items()}
