"""Pixel cross-entropy, masked means, KL and the HFD cosine distance."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` is true; an empty mask gives 0, never NaN.

    Masked-out positions are replaced (not multiplied) so a NaN there cannot leak in.
    """
    total = torch.where(mask, values, torch.zeros_like(values)).sum()
    return total / mask.sum().clamp(min=1).to(values.dtype)


def masked_mean_per_image(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each image's mean of ``values`` where ``mask`` is true; 0 for an image whose mask is empty.

    (N, ...) ×2 -> (N,).
    """
    kept = torch.where(mask, values, torch.zeros_like(values)).flatten(1).sum(dim=1)
    return kept / mask.flatten(1).sum(dim=1).clamp(min=1).to(values.dtype)


def log_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log softmax over classes at temperature T, in fp32. (N, K, H, W) -> (N, K, H, W)."""
    return F.log_softmax(logits.float() / temperature, dim=1)


def pixel_ce_map(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Per-pixel cross-entropy. (N, K, H, W), (N, H, W) -> (N, H, W), 0 at ignored pixels."""
    return nll_map(log_probs(logits), target, ignore_index)


def nll_map(log_p: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """``pixel_ce_map`` from log-probabilities already at hand (saves a log-softmax)."""
    return F.nll_loss(log_p, target, ignore_index=ignore_index, reduction="none")


def ce_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255,
            ce_map: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy averaged over valid pixels (docs/method.md: mean over valid pixels, 255 ignored)."""
    if ce_map is None:
        ce_map = pixel_ce_map(logits, target, ignore_index)
    return masked_mean(ce_map, target != ignore_index)


def kl_map(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Per-pixel KL(p_t ‖ p_s) = Σ_k p_t (log p_t − log p_s) at temperature T, teacher detached.

    (N, K, H, W), (N, K, H, W) -> (N, H, W). Not multiplied by T² (callers do that once).
    """
    return kl_from_log_probs(log_probs(teacher_logits, temperature), log_probs(student_logits, temperature))


def kl_from_log_probs(log_t: torch.Tensor, log_s: torch.Tensor) -> torch.Tensor:
    """Per-pixel KL(p_t ‖ p_s) from log-probabilities; the teacher's are detached here."""
    log_t = log_t.detach()
    return (log_t.exp() * (log_t - log_s)).sum(dim=1)


def kl_student_first_from_log_probs(log_t: torch.Tensor, log_s: torch.Tensor) -> torch.Tensor:
    """Per-pixel KL(p_s ‖ p_t) = Σ_k p_s (log p_s − log p_t), the teacher's detached: the student's own
    distribution first, as the ICCV paper's Eq. 4-5 write it. Same arguments as ``kl_from_log_probs``."""
    return (log_s.exp() * (log_s - log_t.detach())).sum(dim=1)


def cosine_distance_map(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """1 − cos along channels, teacher detached. (N, C, h, w), (N, C, h, w) -> (N, h, w)."""
    return 1.0 - F.cosine_similarity(student.float(), teacher.detach().float(), dim=1, eps=1e-8)


def hfd_loss(transformed: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
    """HFD: mean over positions of 1 − cos(Attn(Γ(F_1)), F_2), the other side detached.

    Args:
        transformed: (N, C, h, w), the other student's stage applied to this student's Γ(F_1).
        target_features: (N, C, h, w), the other student's own F_2 (detached here).
    """
    return cosine_distance_map(transformed, target_features).mean()
