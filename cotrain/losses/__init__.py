"""Loss functions: CE, HFD cosine distance, BSD (region-wise and pixel-wise), KL."""
from cotrain.losses.basic import (
    ce_loss,
    cosine_distance_map,
    hfd_loss,
    kl_from_log_probs,
    kl_map,
    kl_student_first_from_log_probs,
    log_probs,
    masked_mean,
    masked_mean_per_image,
    nll_map,
    pixel_ce_map,
)
from cotrain.losses.bsd import (
    bsd_pixel_loss,
    bsd_region_loss,
    pixel_teacher_mask,
    pixel_terms,
    pixel_terms_from_log_probs,
    region_ce,
    region_teacher_mask,
    region_terms,
)

__all__ = ["bsd_pixel_loss", "bsd_region_loss", "ce_loss", "cosine_distance_map", "hfd_loss",
           "kl_from_log_probs", "kl_map", "kl_student_first_from_log_probs", "log_probs", "masked_mean", "nll_map",
           "masked_mean_per_image",
           "pixel_ce_map", "pixel_teacher_mask",
           "pixel_terms", "pixel_terms_from_log_probs", "region_ce",
           "region_teacher_mask", "region_terms"]
