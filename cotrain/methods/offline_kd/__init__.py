"""Offline KD: "Distilling the Knowledge in a Neural Network" (Hinton, Vinyals, Dean, 2015).

Each student distils pixel-wise KL at temperature T from a frozen teacher of the *other*
architecture trained by Vanilla: L^C = CE^C + w·T²·KL(p^{V*} ‖ p^C), L^V likewise with C*.
``teacher_vit`` is the checkpoint whose ViT teaches our CNN, ``teacher_cnn`` the one whose
CNN teaches our ViT; a missing path leaves that side with CE only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from cotrain.methods.options import LogitKDOptions
from cotrain.methods.registry import declare_method
from cotrain.options import option


@dataclass(frozen=True)
class OfflineKDOptions(LogitKDOptions):
    teacher_cnn: Optional[str] = option(None, "offline KD: frozen CNN teacher checkpoint (teaches the ViT)")
    teacher_vit: Optional[str] = option(None, "offline KD: frozen ViT teacher checkpoint (teaches the CNN)")


declare_method("offline_kd", "cotrain.methods.offline_kd.method:OfflineKD", OfflineKDOptions, "Offline KD")
