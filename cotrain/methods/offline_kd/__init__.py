"""Offline KD: "Distilling the Knowledge in a Neural Network" (Hinton, Vinyals, Dean, 2015).

Each student distils pixel-wise KL at temperature T from a frozen teacher of the *other*
architecture trained by Vanilla: L^C = CE^C + w·T²·KL(p^{V*} ‖ p^C), L^V likewise with C*.
``teacher_vit`` is the checkpoint whose ViT teaches our CNN, ``teacher_cnn`` the one whose
CNN teaches our ViT; a missing path leaves that side with CE only.
"""
from __future__ import annotations

from dataclasses import dataclass

from cotrain.methods.options import LogitKDOptions, TeacherOptions
from cotrain.methods.registry import declare_method


@dataclass(frozen=True)
class OfflineKDOptions(TeacherOptions, LogitKDOptions):
    """T, the KD weight and the two teacher checkpoints (``teacher_cnn``, ``teacher_vit``)."""

    def needs_teachers(self) -> bool:
        return True


declare_method("offline_kd", "cotrain.methods.offline_kd.method:OfflineKD", OfflineKDOptions, "Offline KD")
