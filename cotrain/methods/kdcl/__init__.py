"""KDCL: "Online Knowledge Distillation via Collaborative Learning" (Guo et al., CVPR 2020).

Both students distil from one detached soft target built from both students:
L^S = CE^S + w·T²·KL(p_t ‖ p^S), mean over valid pixels. ``kdcl_mode`` picks the target
(docs/method.md, "KDCL"):

- ``minlogit`` (default, KDCL-MinLogit): per pixel, each student's logits minus its
  ground-truth logit, element-wise minimum over the students.
- ``naive`` (KDCL-Naive): per image, the student with the lower cross-entropy is the
  teacher; its logits are everyone's target (it distils from itself: KL 0).
- ``logit_mean``: the plain average of the students' logits (not a KDCL variant; kept for comparison).
"""
from __future__ import annotations

from dataclasses import dataclass

from cotrain.methods.options import LogitKDOptions
from cotrain.methods.registry import declare_method
from cotrain.options import one_of, option

KDCL_MODES = ("minlogit", "naive", "logit_mean")


@dataclass(frozen=True)
class KDCLOptions(LogitKDOptions):
    kdcl_mode: str = option("minlogit", "KDCL soft target", one_of(KDCL_MODES))


declare_method("kdcl", "cotrain.methods.kdcl.method:KDCL", KDCLOptions, "KDCL")
