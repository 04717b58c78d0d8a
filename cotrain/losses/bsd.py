"""Bidirectional selective distillation (BSD), region-wise and pixel-wise (Zhu et al., ICCV 2023, §3.3).

The student with the strictly lower cross-entropy teaches; ties and ignored pixels go
as docs/method.md fixes them: m = 1 (CNN teaches) only where CE_cnn < CE_vit on valid pixels.

``norm`` says how the masked means are normalised (docs/method.md, "BSD normalisation"):
``batch`` divides by the selected positions of the whole batch, ``image`` takes each image's
mean over its selected positions (the paper's per-image equations) and averages the images.

``kl`` is pixel-wise BSD's KL direction (docs/method.md, "BSD-P's KL direction"): ``teacher_first``
(default) is KL(p_teacher ‖ p_student); ``student_first`` is Eq. 4-5 read literally, KL(P^C ‖ P^V) in the
CNN's term and KL(P^V ‖ P^C) in the ViT's, the learning student's distribution first.
"""
from __future__ import annotations

from typing import Callable

import torch

from cotrain.losses.basic import (
    cosine_distance_map,
    kl_from_log_probs,
    kl_student_first_from_log_probs,
    log_probs,
    masked_mean,
    masked_mean_per_image,
    pixel_ce_map,
)

BSD_NORMS = ("batch", "image")
BSD_KLS = ("teacher_first", "student_first")


def selected_mean(values: torch.Tensor, mask: torch.Tensor, norm: str = "batch") -> torch.Tensor:
    """Mean of ``values`` over ``mask``, normalised per batch or per image (see the module doc)."""
    if norm not in BSD_NORMS:
        raise ValueError(f"bsd_norm={norm!r} is invalid; allowed: {', '.join(BSD_NORMS)}")
    return masked_mean(values, mask) if norm == "batch" else masked_mean_per_image(values, mask).mean()


def pixel_teacher_mask(ce_cnn: torch.Tensor, ce_vit: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """m: (N, H, W) bool, true where the CNN teaches (strictly lower CE, valid pixels only)."""
    return (ce_cnn < ce_vit) & valid


def region_ce(ce_map: torch.Tensor, valid: torch.Tensor, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Average per-pixel CE over the valid pixels of each H/h × W/w block.

    Returns:
        (N, h, w) mean CE per region and (N, h, w) bool "region has a valid pixel".
    """
    n, height, width = ce_map.shape
    h, w = grid
    if height % h or width % w:
        raise ValueError(f"logits size {height}x{width} is not a multiple of the region grid {h}x{w}")
    blocks = (n, h, height // h, w, width // w)
    sums = torch.where(valid, ce_map, torch.zeros_like(ce_map)).reshape(blocks).sum(dim=(2, 4))
    counts = valid.reshape(blocks).sum(dim=(2, 4))
    return sums / counts.clamp(min=1), counts > 0


def region_teacher_mask(ce_cnn: torch.Tensor, ce_vit: torch.Tensor, valid: torch.Tensor,
                        grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """m̂ (CNN teaches the region) and the mask of regions holding any valid pixel, both (N, h, w)."""
    rce_cnn, region_valid = region_ce(ce_cnn, valid, grid)
    rce_vit, _ = region_ce(ce_vit, valid, grid)
    return (rce_cnn < rce_vit) & region_valid, region_valid


def pixel_terms(logits_cnn: torch.Tensor, logits_vit: torch.Tensor, cnn_teaches: torch.Tensor,
                valid: torch.Tensor, temperature: float, norm: str = "batch",
                kl: str = "teacher_first") -> tuple[torch.Tensor, torch.Tensor]:
    """L_P^C over m = 0 pixels (ViT teaches) and L_P^V over m = 1 pixels, each × T²."""
    return pixel_terms_from_log_probs(log_probs(logits_cnn, temperature), log_probs(logits_vit, temperature),
                                      cnn_teaches, valid, temperature, norm, kl)


def pixel_terms_from_log_probs(log_cnn: torch.Tensor, log_vit: torch.Tensor, cnn_teaches: torch.Tensor,
                               valid: torch.Tensor, temperature: float, norm: str = "batch",
                               kl: str = "teacher_first") -> tuple[torch.Tensor, torch.Tensor]:
    """``pixel_terms`` from each student's log-probabilities at T: one log-softmax per student
    serves both directions (each side's teacher copy is detached)."""
    divergence = kl_map_from_log_probs(kl)
    scale = temperature ** 2
    loss_cnn = selected_mean(divergence(log_vit, log_cnn), valid & ~cnn_teaches, norm)
    loss_vit = selected_mean(divergence(log_cnn, log_vit), cnn_teaches, norm)
    return loss_cnn * scale, loss_vit * scale


def kl_map_from_log_probs(kl: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The per-pixel divergence ``(log p_teacher, log p_student) -> (N, H, W)`` of a ``bsd_kl`` value."""
    # docs/method.md decision "BSD-P's KL direction": teacher-first by default, Eq. 4-5 as written on request.
    if kl not in BSD_KLS:
        raise ValueError(f"bsd_kl={kl!r} is invalid; allowed: {', '.join(BSD_KLS)}")
    return kl_from_log_probs if kl == "teacher_first" else kl_student_first_from_log_probs


def region_terms(feat_cnn: torch.Tensor, feat_vit: torch.Tensor, cnn_teaches: torch.Tensor,
                 region_valid: torch.Tensor, norm: str = "batch") -> tuple[torch.Tensor, torch.Tensor]:
    """L_R^C over m̂ = 0 regions and L_R^V over m̂ = 1 regions.

    docs/method.md decision: S = 1 − cos (cosine *distance*), since minimising the paper's
    "similarity" would push the students apart.
    """
    loss_cnn = selected_mean(cosine_distance_map(feat_cnn, feat_vit), region_valid & ~cnn_teaches, norm)
    loss_vit = selected_mean(cosine_distance_map(feat_vit, feat_cnn), cnn_teaches, norm)
    return loss_cnn, loss_vit


def bsd_pixel_loss(logits_cnn: torch.Tensor, logits_vit: torch.Tensor, target: torch.Tensor, *,
                   ignore_index: int = 255, temperature: float = 1.0, norm: str = "batch",
                   kl: str = "teacher_first") -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-wise BSD. (N, K, H, W) ×2, (N, H, W) -> (loss_cnn, loss_vit), scalars."""
    valid = target != ignore_index
    mask = pixel_teacher_mask(pixel_ce_map(logits_cnn, target, ignore_index),
                              pixel_ce_map(logits_vit, target, ignore_index), valid)
    return pixel_terms(logits_cnn, logits_vit, mask, valid, temperature, norm, kl)


def bsd_region_loss(feat_cnn: torch.Tensor, feat_vit: torch.Tensor, logits_cnn: torch.Tensor,
                    logits_vit: torch.Tensor, target: torch.Tensor, *,
                    ignore_index: int = 255, norm: str = "batch") -> tuple[torch.Tensor, torch.Tensor]:
    """Region-wise BSD.

    Args:
        feat_cnn, feat_vit: (N, D, h, w) Γ-transformed last features; (h, w) is the region grid.
        logits_cnn, logits_vit: (N, K, H, W), H and W multiples of h and w.
        target: (N, H, W) labels, ``ignore_index`` ignored.
        norm: ``batch`` or ``image`` (module doc).
    """
    if feat_cnn.shape != feat_vit.shape:
        raise ValueError(f"region features differ in shape: {tuple(feat_cnn.shape)} vs {tuple(feat_vit.shape)}")
    valid = target != ignore_index
    mask, region_valid = region_teacher_mask(pixel_ce_map(logits_cnn, target, ignore_index),
                                             pixel_ce_map(logits_vit, target, ignore_index),
                                             valid, tuple(feat_cnn.shape[-2:]))
    return region_terms(feat_cnn, feat_vit, mask, region_valid, norm)
