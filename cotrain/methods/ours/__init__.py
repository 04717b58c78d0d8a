"""HFD + BSD: "A Good Student is Cooperative and Reliable" (Zhu et al., ICCV 2023).

L^C = CE^C + β·HFD^C + γ·(L_R^C + α·L_P^C), and L^V likewise (docs/method.md, "Losses").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from cotrain.methods.options import TemperatureOption
from cotrain.methods.registry import declare_method
from cotrain.options import at_least, nonneg, one_of, option, parse_grid, parses

# cotrain.losses.bsd.BSD_NORMS and BSD_KLS, spelled out here so the declaration imports no torch (a test checks
# they agree).
BSD_NORMS = ("batch", "image")
BSD_KLS = ("teacher_first", "student_first")


@dataclass(frozen=True)
class OursOptions(TemperatureOption):
    """docs/method.md's defaults: α = 1, β = 0.1, γ = 1, T = 1, all switches on, D̂ = 256, the region grid
    of the MiT stage 4 (None), BSD means over the batch, teacher-first KL in pixel-wise BSD."""

    alpha: float = option(1.0, "weight of pixel-wise BSD inside BSD", nonneg)
    beta: float = option(0.1, "weight of HFD", nonneg)
    gamma: float = option(1.0, "weight of BSD", nonneg)
    hfd: bool = option(True, "heterogeneous feature distillation")
    bsd_region: bool = option(True, "region-wise BSD")
    bsd_pixel: bool = option(True, "pixel-wise BSD")
    region_dim: int = option(256, "common channel count D̂ of region features", at_least(1))
    region_grid: Optional[str] = option(None, "region grid HxW of region-wise BSD, e.g. 4x4 (default: MiT stage-4 "
                                        "grid)", parses(parse_grid, "HxW with H, W >= 1, e.g. 4x4"))
    bsd_norm: str = option("batch", "BSD masked means over the batch's or each image's selected positions",
                           one_of(BSD_NORMS))
    # docs/method.md decision "BSD-P's KL direction": teacher-first, unlike Eq. 4-5's literal KL(P^C ‖ P^V).
    bsd_kl: str = option("teacher_first", "pixel-wise BSD's KL: teacher_first, KL(p_teacher ‖ p_student), or "
                         "student_first, Eq. 4-5 as written (KL(P^C ‖ P^V) in the CNN's term)", one_of(BSD_KLS))


declare_method("ours", "cotrain.methods.ours.method:Ours", OursOptions, "Ours")
