"""Frozen Vanilla teachers of the offline methods (Offline KD, IFVD's offline form).

The ICCV paper's offline baselines cross architectures: "the CNN-based and ViT-based students guide each
other as teachers" (§4.1), so our CNN learns from the ViT of a Vanilla checkpoint (``teacher_vit``) and our
ViT from its CNN (``teacher_cnn``).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from cotrain.models import Student, StudentOutput
from cotrain.models.checkpoint import load_student

# The roles: "of_cnn" is the teacher *of* our CNN (a ViT), "of_vit" the teacher of our ViT (a CNN).
ROLES = {"of_cnn": "vit", "of_vit": "cnn"}


class FrozenTeachers(nn.ModuleDict):
    """Up to two frozen teachers, always in eval mode, outside every optimiser (no ``requires_grad``).

    Registered as a submodule (it follows ``.to(device)`` and is saved with the pair) but outside
    ``cnn_side``/``vit_side``, so no optimiser sees it.
    """

    def __init__(self, method: str, teacher_cnn: Optional[str], teacher_vit: Optional[str], num_classes: int) -> None:
        super().__init__()
        if teacher_cnn is None and teacher_vit is None:
            raise ValueError(f"{method} needs teacher_cnn and/or teacher_vit checkpoint paths")
        paths = {"of_cnn": teacher_vit, "of_vit": teacher_cnn}
        for role, path in paths.items():
            if path is not None:
                self[role] = load_teacher(method, path, ROLES[role], num_classes)

    def train(self, mode: bool = True) -> FrozenTeachers:
        """Stay in eval whatever the pair does: frozen BatchNorm statistics, no dropout."""
        return super().train(False)

    @torch.no_grad()
    def outputs(self, images: torch.Tensor) -> dict[str, StudentOutput]:
        """Each teacher's forward on this step's images, keyed by role; computed once per step."""
        return {role: teacher(images) for role, teacher in self.items()}


def student_classes(student: Student) -> int:
    """K, the output channels of a student's segmentation head."""
    return student.model.segmentation_head[0].out_channels


def load_teacher(method: str, path: str, side: str, num_classes: int) -> Student:
    """The frozen ``side`` student of a Vanilla checkpoint, in eval mode, checked to predict K classes."""
    teacher, teacher_classes = load_student(path, side)
    if teacher_classes != num_classes:
        raise ValueError(f"{method} teacher {path} predicts {teacher_classes} classes; "
                         f"the students predict {num_classes}")
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher
