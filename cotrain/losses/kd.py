"""Loss math of the baselines: logit KD (Hinton, DML, KDCL) and IFVD's intra-class feature variation."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cotrain.losses.basic import kl_map, masked_mean, masked_mean_per_image


def kd_kl_loss(teacher_logits: torch.Tensor, student_logits: torch.Tensor, valid: torch.Tensor,
               temperature: float = 1.0) -> torch.Tensor:
    """T² · mean over valid pixels of KL(p_t ‖ p_s) at temperature T, teacher detached.

    Args:
        teacher_logits, student_logits: (N, K, H, W).
        valid: (N, H, W) bool, non-ignored pixels.
    """
    return temperature ** 2 * masked_mean(kl_map(teacher_logits, student_logits, temperature), valid)


def class_mean_kl_loss(teacher_logits: torch.Tensor, student_logits: torch.Tensor, valid: torch.Tensor,
                       temperature: float = 1.0) -> torch.Tensor:
    """IFVD's pixel KD: ``kd_kl_loss`` divided by the number of classes K.

    The IFVD reference's ``CriterionKD`` is ``nn.KLDivLoss()`` with its default mean reduction, which averages
    the terms p_t (log p_t − log p_s) over classes as well as pixels: the per-pixel KL / K (docs/method.md, "IFVD").

    Args:
        teacher_logits, student_logits: (N, K, H, W).
        valid: (N, H, W) bool, non-ignored pixels.
    """
    return kd_kl_loss(teacher_logits, student_logits, valid, temperature) / student_logits.shape[1]


def mean_ensemble(logits: list[torch.Tensor]) -> torch.Tensor:
    """The plain average of the students' logits, detached. Each (N, K, H, W) -> (N, K, H, W)."""
    return torch.stack([z.detach().float() for z in logits]).mean(dim=0)


def naive_ensemble(logits: list[torch.Tensor], ce_maps: list[torch.Tensor], valid: torch.Tensor) -> torch.Tensor:
    """KDCL-Naive: per image, the logits of the student with the lowest cross-entropy, detached.

    Args:
        logits: each (N, K, H, W).
        ce_maps: each student's (N, H, W) per-pixel CE, read where ``valid``.
        valid: (N, H, W) bool.

    Returns:
        (N, K, H, W); a tie goes to the first student (the CNN).
    """
    image_ce = torch.stack([masked_mean_per_image(ce, valid) for ce in ce_maps])  # (S, N)
    best = image_ce.argmin(dim=0)                                                  # (N,)
    stacked = torch.stack([z.detach().float() for z in logits])                    # (S, N, K, H, W)
    return stacked[best, torch.arange(len(best), device=best.device)]


def minlogit_ensemble(logits: list[torch.Tensor], target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """KDCL-MinLogit: element-wise min over students of z − z_gt, detached.

    Args:
        logits: each (N, K, H, W).
        target: (N, H, W) labels; read only where ``valid``.
        valid: (N, H, W) bool.

    Returns:
        (N, K, H, W); ignored pixels have no z_gt, so they fall back to the mean ensemble.
    """
    gt = torch.where(valid, target, torch.zeros_like(target)).unsqueeze(1)  # (N, 1, H, W)
    shifted = [z.detach().float() - z.detach().float().gather(1, gt) for z in logits]
    ens = torch.stack(shifted).amin(dim=0)
    return torch.where(valid.unsqueeze(1), ens, mean_ensemble(logits))


def labels_on_grid(target: torch.Tensor, valid: torch.Tensor,
                   size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-resize labels and their validity to a feature grid. (N, H, W) -> two (N, h, w)."""
    lab = F.interpolate(target.unsqueeze(1).float(), size=size, mode="nearest").squeeze(1).long()
    ok = F.interpolate(valid.unsqueeze(1).float(), size=size, mode="nearest").squeeze(1) > 0.5
    return lab, ok


def ifv_map(features: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor, num_classes: int) -> torch.Tensor:
    """IFV: cosine similarity of each position's feature to its class prototype in the same image.

    Prototypes are per image, as in IFVD and CIRKD: the mean feature over an image's
    valid positions of each ground-truth class.

    Args:
        features: (N, C, h, w).
        labels: (N, h, w) class indices, read only where ``valid``.
        valid: (N, h, w) bool.
        num_classes: K.

    Returns:
        (N, h, w); 0 at invalid positions (callers mask them out).
    """
    feats = features.float()
    safe = torch.where(valid, labels, torch.zeros_like(labels))
    onehot = F.one_hot(safe, num_classes).permute(0, 3, 1, 2).float() * valid.unsqueeze(1)  # (N, K, h, w)
    counts = onehot.sum(dim=(2, 3)).clamp(min=1).unsqueeze(-1)                               # (N, K, 1)
    prototypes = torch.einsum("nkhw,nchw->nkc", onehot, feats) / counts                     # (N, K, C)
    own = torch.einsum("nkhw,nkc->nchw", onehot, prototypes)                                # (N, C, h, w)
    return F.cosine_similarity(feats, own, dim=1, eps=1e-8) * valid


def ifv_loss(student_ifv: torch.Tensor, teacher_ifv: torch.Tensor) -> torch.Tensor:
    """MSE between IFV maps over all positions, teacher detached. (N, h, w) ×2 -> scalar.

    Ignored positions are 0 in both maps, so they add 0 but count in the mean, as in the
    IFVD reference (which sets their cosine to 1 in both maps).
    """
    return ((student_ifv - teacher_ifv.detach()) ** 2).mean()
