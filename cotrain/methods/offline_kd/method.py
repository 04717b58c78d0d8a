"""Offline KD's losses and frozen teachers (declared, with its options, in this package's ``__init__``)."""
from __future__ import annotations

import torch
from torch import nn

from cotrain.losses.kd import kd_kl_loss
from cotrain.methods.base import Method, PairContext
from cotrain.methods.offline_kd import OfflineKDOptions
from cotrain.models import Student
from cotrain.models.checkpoint import load_student


class OfflineKD(Method):
    """Hinton KD from frozen Vanilla-trained teachers of the other architecture."""

    name = "offline_kd"
    term_names = ("kd_cnn", "kd_vit")
    Options = OfflineKDOptions

    def __init__(self, cnn: Student, vit: Student, options: OfflineKDOptions) -> None:
        super().__init__(cnn, vit, options)
        if options.teacher_cnn is None and options.teacher_vit is None:
            raise ValueError("offline_kd needs teacher_cnn and/or teacher_vit checkpoint paths")
        num_classes = student_classes(cnn)
        # Registered submodules (they follow .to(device)) but outside cnn_side/vit_side: no optimizer sees them.
        self.teachers = nn.ModuleDict()
        if options.teacher_vit is not None:
            self.teachers["of_cnn"] = load_teacher(options.teacher_vit, "vit", num_classes)
        if options.teacher_cnn is not None:
            self.teachers["of_vit"] = load_teacher(options.teacher_cnn, "cnn", num_classes)

    def train(self, mode: bool = True) -> OfflineKD:
        """Switch mode, but the teachers stay in eval (frozen BatchNorm statistics, no dropout)."""
        super().train(mode)
        self.teachers.eval()
        return self

    def terms(self, ctx: PairContext) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        o, zero = self.options, ctx.zero()
        z_t = self.teacher_logits(ctx.images)
        kd_c = o.kd_weight * kd_kl_loss(z_t["of_cnn"], ctx.out_cnn.logits, ctx.valid, o.temperature) \
            if "of_cnn" in z_t else zero
        kd_v = o.kd_weight * kd_kl_loss(z_t["of_vit"], ctx.out_vit.logits, ctx.valid, o.temperature) \
            if "of_vit" in z_t else zero
        return kd_c, kd_v, {"kd_cnn": kd_c, "kd_vit": kd_v}

    @torch.no_grad()
    def teacher_logits(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each teacher's (N, K, H, W) logits on this step's images, computed once per step."""
        return {role: teacher(images).logits for role, teacher in self.teachers.items()}


def student_classes(student: Student) -> int:
    """K, the output channels of a student's segmentation head."""
    return student.model.segmentation_head[0].out_channels


def load_teacher(path: str, side: str, num_classes: int) -> Student:
    """The frozen ``side`` student of a Vanilla checkpoint, in eval mode, checked to predict K classes."""
    teacher, teacher_classes = load_student(path, side)
    if teacher_classes != num_classes:
        raise ValueError(f"offline_kd teacher {path} predicts {teacher_classes} classes; "
                         f"the students predict {num_classes}")
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher
