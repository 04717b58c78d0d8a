"""CE, HFD and BSD against values worked out by hand on tiny tensors (docs/method.md, "Losses").

Expected numbers are written as arithmetic on the inputs, never by calling the code under test.
"""
from __future__ import annotations

import math

import pytest
import torch

from cotrain.losses import (
    bsd_pixel_loss,
    bsd_region_loss,
    ce_loss,
    hfd_loss,
    kl_map,
    log_probs,
    masked_mean,
    pixel_teacher_mask,
    pixel_terms_from_log_probs,
    region_ce,
)

IGNORE = 255


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def ce2(logit_target: float, logit_other: float) -> float:
    """Cross-entropy of a 2-class softmax at the target class."""
    return math.log(1.0 + math.exp(logit_other - logit_target))


def kl2(teacher: tuple[float, float], student: tuple[float, float], t: float = 1.0) -> float:
    """KL(p_t ‖ p_s) of two 2-class softmaxes at temperature t."""
    pt = sigmoid((teacher[0] - teacher[1]) / t)
    ps = sigmoid((student[0] - student[1]) / t)
    return pt * math.log(pt / ps) + (1 - pt) * math.log((1 - pt) / (1 - ps))


def logits_map(pixels: list[list[tuple[float, ...]]]) -> torch.Tensor:
    """[[(l_0, l_1, ...) per pixel] per row] -> (1, K, H, W)."""
    return torch.tensor(pixels, dtype=torch.float32).permute(2, 0, 1).unsqueeze(0)


def close(value: torch.Tensor, expected: float) -> None:
    assert torch.isfinite(value)
    assert float(value) == pytest.approx(expected, rel=1e-5, abs=1e-6)


# ---------------------------------------------------------------- CE, masked mean, KL, HFD

def test_ce_is_mean_over_valid_pixels_only():
    logits = logits_map([[(2.0, 0.0), (0.0, 1.0)], [(9.0, -9.0), (0.0, 3.0)]])
    target = torch.tensor([[[0, 0], [IGNORE, 1]]])
    expected = (ce2(2.0, 0.0) + ce2(0.0, 1.0) + ce2(3.0, 0.0)) / 3
    close(ce_loss(logits, target), expected)


def test_ce_all_ignored_is_zero_with_finite_gradient():
    logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss = ce_loss(logits, torch.full((1, 2, 2), IGNORE))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


def test_masked_mean_empty_is_zero_and_masked_nan_does_not_leak():
    values = torch.tensor([1.0, float("nan"), 3.0])
    assert float(masked_mean(values, torch.tensor([True, False, True]))) == 2.0
    assert float(masked_mean(values, torch.zeros(3, dtype=torch.bool))) == 0.0


def test_kl_map_matches_definition():
    teacher, student = logits_map([[(1.0, 0.0)]]), logits_map([[(0.0, 2.0)]])
    close(kl_map(teacher, student)[0, 0, 0], kl2((1.0, 0.0), (0.0, 2.0)))
    close(kl_map(teacher, student, temperature=2.0)[0, 0, 0], kl2((1.0, 0.0), (0.0, 2.0), t=2.0))
    close(kl_map(teacher, teacher)[0, 0, 0], 0.0)


def test_hfd_is_one_minus_cosine_averaged_over_positions():
    transformed = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2): [1, 0] and [0, 1]
    target = torch.tensor([[[[1.0, 0.0]], [[1.0, 2.0]]]])       # [1, 1] and [0, 2]
    close(hfd_loss(transformed, target), ((1 - 1 / math.sqrt(2)) + 0.0) / 2)
    close(hfd_loss(transformed, -transformed), 2.0)


def test_hfd_gradient_reaches_only_the_transformed_side():
    transformed = torch.randn(2, 4, 3, 3, requires_grad=True)
    target = torch.randn(2, 4, 3, 3, requires_grad=True)
    grad_t, grad_target = torch.autograd.grad(hfd_loss(transformed, target), (transformed, target),
                                              allow_unused=True)
    assert grad_t is not None and grad_t.abs().sum() > 0
    assert grad_target is None or not grad_target.any()


# ---------------------------------------------------------------- pixel-wise BSD

CNN_GOOD, VIT_POOR = (2.0, 0.0), (0.0, 0.0)  # target 0: CE_cnn = log(1 + e^-2) < CE_vit = log 2


def test_pixel_bsd_all_ignored_is_exactly_zero():
    logits_c = torch.randn(1, 3, 2, 2, requires_grad=True)
    logits_v = torch.randn(1, 3, 2, 2, requires_grad=True)
    loss_c, loss_v = bsd_pixel_loss(logits_c, logits_v, torch.full((1, 2, 2), IGNORE))
    assert loss_c.item() == 0.0 and loss_v.item() == 0.0
    (loss_c + loss_v).backward()
    assert torch.isfinite(logits_c.grad).all() and torch.isfinite(logits_v.grad).all()


def test_pixel_bsd_cnn_better_everywhere_teaches_vit_only():
    logits_c = logits_map([[CNN_GOOD, CNN_GOOD], [CNN_GOOD, CNN_GOOD]])
    logits_v = logits_map([[VIT_POOR, VIT_POOR], [VIT_POOR, VIT_POOR]])
    loss_c, loss_v = bsd_pixel_loss(logits_c, logits_v, torch.zeros(1, 2, 2, dtype=torch.long))
    s = sigmoid(2.0)
    assert loss_c.item() == 0.0
    close(loss_v, s * math.log(s / 0.5) + (1 - s) * math.log((1 - s) / 0.5))
    assert loss_v.item() > 0


def test_pixel_bsd_vit_better_everywhere_teaches_cnn_only():
    logits_c = logits_map([[VIT_POOR, VIT_POOR], [VIT_POOR, VIT_POOR]])
    logits_v = logits_map([[CNN_GOOD, CNN_GOOD], [CNN_GOOD, CNN_GOOD]])
    loss_c, loss_v = bsd_pixel_loss(logits_c, logits_v, torch.zeros(1, 2, 2, dtype=torch.long))
    assert loss_v.item() == 0.0
    close(loss_c, kl2(CNN_GOOD, VIT_POOR))
    assert loss_c.item() > 0


def test_pixel_bsd_mixed_map_averages_each_side_over_its_own_pixels():
    # (0,0): CNN better; (0,1), (1,0): ViT better; (1,1): ignored (would be CNN better).
    logits_c = logits_map([[(2.0, 0.0), (0.0, 1.0)], [(0.5, 0.0), (5.0, 0.0)]])
    logits_v = logits_map([[(0.0, 0.0), (3.0, 0.0)], [(0.0, 2.0), (0.0, 0.0)]])
    target = torch.tensor([[[0, 0], [1, IGNORE]]])
    loss_c, loss_v = bsd_pixel_loss(logits_c, logits_v, target)
    assert ce2(2.0, 0.0) < ce2(0.0, 0.0) and ce2(3.0, 0.0) < ce2(0.0, 1.0) and ce2(2.0, 0.0) < ce2(0.0, 0.5)
    close(loss_c, (kl2((3.0, 0.0), (0.0, 1.0)) + kl2((0.0, 2.0), (0.5, 0.0))) / 2)
    close(loss_v, kl2((2.0, 0.0), (0.0, 0.0)))


def test_pixel_bsd_equal_ce_means_vit_teaches():
    # Same CE (target class probability 1/4 for both), different distributions:
    # p_c = (1, 2, 1)/4, p_v = (1, 1, 2)/4 (exps of 0 and ln 2 keep the tie exact in float).
    logits_c = logits_map([[(0.0, math.log(2), 0.0)]])
    logits_v = logits_map([[(0.0, 0.0, math.log(2))]])
    target = torch.zeros(1, 1, 1, dtype=torch.long)
    ce_c = torch.nn.functional.cross_entropy(logits_c, target, reduction="none")
    ce_v = torch.nn.functional.cross_entropy(logits_v, target, reduction="none")
    assert torch.equal(ce_c, ce_v)  # premise: an exact tie
    loss_c, loss_v = bsd_pixel_loss(logits_c, logits_v, target)
    # KL(p_v ‖ p_c) = 1/4 log(1) + 1/4 log(1/2) + 2/4 log(2)
    close(loss_c, 0.25 * math.log(1.0) + 0.25 * math.log(0.5) + 0.5 * math.log(2.0))
    assert loss_v.item() == 0.0


def test_teacher_mask_is_strict_and_ignores_invalid_pixels():
    ce_c = torch.tensor([[[1.0, 1.0, 0.5, 0.1]]])
    ce_v = torch.tensor([[[1.0, 2.0, 0.4, 9.0]]])
    valid = torch.tensor([[[True, True, True, False]]])
    assert pixel_teacher_mask(ce_c, ce_v, valid).tolist() == [[[False, True, False, False]]]


def test_pixel_bsd_temperature_scales_by_t_squared():
    logits_c = logits_map([[CNN_GOOD]])
    logits_v = logits_map([[VIT_POOR]])
    target = torch.zeros(1, 1, 1, dtype=torch.long)
    _, loss_v = bsd_pixel_loss(logits_c, logits_v, target, temperature=2.0)
    s = sigmoid(2.0 / 2.0)  # softmax of (2, 0)/T
    close(loss_v, 4.0 * (s * math.log(s / 0.5) + (1 - s) * math.log((1 - s) / 0.5)))


def test_pixel_bsd_teacher_side_is_detached():
    torch.manual_seed(0)
    logits_c = torch.randn(2, 3, 4, 4, requires_grad=True)
    logits_v = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 4))
    loss_c, loss_v = bsd_pixel_loss(logits_c, logits_v, target)
    assert loss_c.item() > 0 and loss_v.item() > 0  # both sides teach somewhere
    g_cc, g_cv = torch.autograd.grad(loss_c, (logits_c, logits_v), retain_graph=True, allow_unused=True)
    g_vc, g_vv = torch.autograd.grad(loss_v, (logits_c, logits_v), allow_unused=True)
    assert g_cv is None or not g_cv.any()
    assert g_vc is None or not g_vc.any()
    assert g_cc.abs().sum() > 0 and g_vv.abs().sum() > 0


@pytest.mark.parametrize("t", [1.0, 3.0])
def test_pixel_terms_from_one_log_softmax_per_student_equal_two_kl_maps(t: float):
    torch.manual_seed(1)
    logits_c, logits_v = torch.randn(2, 5, 6, 6), torch.randn(2, 5, 6, 6)
    valid = torch.rand(2, 6, 6) > 0.2
    cnn_teaches = (torch.rand(2, 6, 6) > 0.5) & valid
    loss_c, loss_v = pixel_terms_from_log_probs(log_probs(logits_c, t), log_probs(logits_v, t), cnn_teaches, valid, t)
    close(loss_c, t * t * float(kl_map(logits_v, logits_c, t)[valid & ~cnn_teaches].mean()))
    close(loss_v, t * t * float(kl_map(logits_c, logits_v, t)[cnn_teaches].mean()))


# ---------------------------------------------------------------- region-wise BSD

def test_region_ce_averages_over_valid_pixels_only():
    ce = torch.tensor([[[1.0, 2.0, 5.0, 5.0], [3.0, 100.0, 5.0, 5.0]]])   # (1, 2, 4), grid 1x2
    valid = torch.tensor([[[True, True, False, False], [True, False, False, False]]])
    mean, has_valid = region_ce(ce, valid, (1, 2))
    assert mean[0, 0, 0].item() == pytest.approx((1 + 2 + 3) / 3)
    assert mean[0, 0, 1].item() == 0.0 and has_valid.tolist() == [[[True, False]]]


def _region_case():
    """Logits (1, 2, 2, 6) on a 1x3 region grid of 2x2 blocks, labels all 0.

    Region 0: CNN better on every pixel. Region 1: CNN slightly better on 3 pixels but much
    worse on one, so its region-average CE is higher (ViT teaches). Region 2: all ignored.
    """
    good, poor = (1.0, 0.0), (0.0, 0.0)
    rows = [[(2.0, 0.0), (2.0, 0.0), good, good, (3.0, 0.0), (3.0, 0.0)],
            [(2.0, 0.0), (2.0, 0.0), good, (-5.0, 0.0), (3.0, 0.0), (3.0, 0.0)]]
    rows_v = [[poor, poor, poor, poor, (0.0, 0.0), (0.0, 0.0)],
              [poor, poor, poor, (5.0, 0.0), (0.0, 0.0), (0.0, 0.0)]]
    target = torch.zeros(1, 2, 6, dtype=torch.long)
    target[..., 4:] = IGNORE
    rce_c = (3 * ce2(1.0, 0.0) + ce2(-5.0, 0.0)) / 4
    rce_v = (3 * ce2(0.0, 0.0) + ce2(5.0, 0.0)) / 4
    assert rce_v < rce_c and ce2(1.0, 0.0) < ce2(0.0, 0.0)  # premise: region 1 goes to the ViT
    return logits_map(rows), logits_map(rows_v), target


def region_features() -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 2, 1, 3) features: CNN [1, 0] everywhere; ViT [0, 1], [1, 1], [-1, 0]."""
    feat_c = torch.tensor([[[[1.0, 1.0, 1.0]], [[0.0, 0.0, 0.0]]]])
    feat_v = torch.tensor([[[[0.0, 1.0, -1.0]], [[1.0, 1.0, 0.0]]]])
    return feat_c, feat_v


def test_region_bsd_by_hand_and_empty_region_counts_for_neither():
    logits_c, logits_v, target = _region_case()
    feat_c, feat_v = region_features()
    loss_c, loss_v = bsd_region_loss(feat_c, feat_v, logits_c, logits_v, target)
    # Region 0 (CNN teaches): S = 1 - cos([1,0],[0,1]) = 1.  Region 1 (ViT teaches): S = 1 - 1/sqrt(2).
    # Region 2 (S = 2) has no valid pixel and must not enter either mean.
    close(loss_v, 1.0)
    close(loss_c, 1 - 1 / math.sqrt(2))


def test_region_bsd_all_ignored_is_exactly_zero():
    logits_c, logits_v, _ = _region_case()
    feat_c, feat_v = (f.clone().requires_grad_() for f in region_features())
    loss_c, loss_v = bsd_region_loss(feat_c, feat_v, logits_c, logits_v, torch.full((1, 2, 6), IGNORE))
    assert loss_c.item() == 0.0 and loss_v.item() == 0.0
    (loss_c + loss_v).backward()
    assert torch.isfinite(feat_c.grad).all() and torch.isfinite(feat_v.grad).all()


def test_region_bsd_one_sided():
    logits_c, logits_v, target = _region_case()
    feat_c, feat_v = region_features()
    target = target.clone()
    target[..., 2:4] = IGNORE  # only region 0 (CNN better) is left
    loss_c, loss_v = bsd_region_loss(feat_c, feat_v, logits_c, logits_v, target)
    assert loss_c.item() == 0.0
    close(loss_v, 1.0)
    # swapping the students swaps the roles
    loss_c, loss_v = bsd_region_loss(feat_v, feat_c, logits_v, logits_c, target)
    assert loss_v.item() == 0.0
    close(loss_c, 1.0)


def test_region_bsd_equal_ce_means_vit_teaches():
    logits = logits_map([[(1.0, 0.0)] * 2] * 2)
    feat_c, feat_v = torch.tensor([[[[1.0]], [[0.0]]]]), torch.tensor([[[[0.0]], [[1.0]]]])
    loss_c, loss_v = bsd_region_loss(feat_c, feat_v, logits, logits.clone(), torch.zeros(1, 2, 2, dtype=torch.long))
    close(loss_c, 1.0)
    assert loss_v.item() == 0.0


def test_region_bsd_teacher_side_is_detached():
    torch.manual_seed(0)
    logits_c, logits_v = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8))
    feat_c = torch.randn(2, 5, 2, 2, requires_grad=True)
    feat_v = torch.randn(2, 5, 2, 2, requires_grad=True)
    loss_c, loss_v = bsd_region_loss(feat_c, feat_v, logits_c, logits_v, target)
    assert loss_c.item() > 0 and loss_v.item() > 0
    g_cc, g_cv = torch.autograd.grad(loss_c, (feat_c, feat_v), retain_graph=True, allow_unused=True)
    g_vc, g_vv = torch.autograd.grad(loss_v, (feat_c, feat_v), allow_unused=True)
    assert g_cv is None or not g_cv.any()
    assert g_vc is None or not g_vc.any()
    assert g_cc.abs().sum() > 0 and g_vv.abs().sum() > 0


def test_region_bsd_rejects_mismatched_features():
    with pytest.raises(ValueError, match="shape"):
        bsd_region_loss(torch.zeros(1, 2, 1, 1), torch.zeros(1, 3, 1, 1), torch.zeros(1, 2, 4, 4),
                        torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long))


# ---------------------------------------------------------------- batch vs per-image normalisation

def test_pixel_bsd_per_image_normalisation_by_hand():
    """Image 0: the ViT teaches 1 pixel; image 1: it teaches 3. Batch: one mean over 4 pixels;
    image: the mean of each image's mean (the paper's 1 / (H×W − M) per image)."""
    vit_good, cnn_bad = (3.0, 0.0), (0.0, 1.0)
    z_v = logits_map([[vit_good] * 3]).repeat(2, 1, 1, 1)
    z_c = torch.cat([logits_map([[cnn_bad, (5.0, 0.0), (5.0, 0.0)]]),
                     logits_map([[cnn_bad, (0.0, 2.0), (0.0, 3.0)]])])
    target = torch.zeros(2, 1, 3, dtype=torch.long)
    kls = [kl2(vit_good, cnn_bad), kl2(vit_good, (0.0, 2.0)), kl2(vit_good, (0.0, 3.0))]
    batch_c, _ = bsd_pixel_loss(z_c, z_v, target, norm="batch")
    image_c, _ = bsd_pixel_loss(z_c, z_v, target, norm="image")
    close(batch_c, (kls[0] + sum(kls)) / 4)
    close(image_c, (kls[0] + sum(kls) / 3) / 2)


def test_region_bsd_per_image_normalisation_and_an_image_without_selected_regions():
    """2 images of 1×2 regions; the CNN teaches both regions of image 0 and one of image 1."""
    feat_c = torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]]], [[[1.0, 1.0]], [[0.0, 0.0]]]])  # (2, 2, 1, 2)
    feat_v = torch.tensor([[[[1.0, 0.0]], [[1.0, 1.0]]], [[[0.0, 1.0]], [[1.0, 1.0]]]])
    good, bad = (4.0, 0.0), (0.0, 4.0)
    logits_c = torch.cat([logits_map([[good, good]]), logits_map([[good, bad]])])
    logits_v = torch.cat([logits_map([[bad, bad]]), logits_map([[bad, good]])])
    target = torch.zeros(2, 1, 2, dtype=torch.long)
    # S = 1 − cos per region: image 0: (1 − 1/√2, 1 − 0); image 1: (1 − 0, 1 − 1/√2).
    s0, s1 = [1 - 1 / math.sqrt(2), 1.0], [1.0, 1 - 1 / math.sqrt(2)]
    cnn_b, vit_b = bsd_region_loss(feat_c, feat_v, logits_c, logits_v, target, norm="batch")
    cnn_i, vit_i = bsd_region_loss(feat_c, feat_v, logits_c, logits_v, target, norm="image")
    close(vit_b, (s0[0] + s0[1] + s1[0]) / 3)
    close(vit_i, ((s0[0] + s0[1]) / 2 + s1[0]) / 2)
    close(cnn_b, s1[1])                  # only image 1's second region has m̂ = 0
    close(cnn_i, (0.0 + s1[1]) / 2)      # image 0 has no such region: it adds 0 and counts


def test_bsd_rejects_unknown_normalisation():
    z = logits_map([[(0.0, 1.0)]])
    with pytest.raises(ValueError, match="bsd_norm='pixel' is invalid"):
        bsd_pixel_loss(z, z, torch.zeros(1, 1, 1, dtype=torch.long), norm="pixel")


# ---------------------------------------------------------------- BSD-P's KL direction (docs/method.md decision)

def kl2_student_first(teacher: tuple[float, float], student: tuple[float, float]) -> float:
    """KL(p_s ‖ p_t) of two 2-class softmaxes: Eq. 4-5 as written, the learning student's distribution first."""
    return kl2(student, teacher)


def test_pixel_bsd_is_teacher_first_by_default():
    logits_c = logits_map([[CNN_GOOD, CNN_GOOD]])
    logits_v = logits_map([[VIT_POOR, VIT_POOR]])
    _, loss_v = bsd_pixel_loss(logits_c, logits_v, torch.zeros(1, 1, 2, dtype=torch.long))
    close(loss_v, kl2(CNN_GOOD, VIT_POOR))
    assert kl2(CNN_GOOD, VIT_POOR) != pytest.approx(kl2_student_first(CNN_GOOD, VIT_POOR))  # the two differ here


def test_pixel_bsd_student_first_is_eq_4_and_5_as_written():
    # (0,0): CNN better, so L_P^V there is KL(P^V ‖ P^C); (0,1): ViT better, so L_P^C is KL(P^C ‖ P^V).
    logits_c = logits_map([[(2.0, 0.0), (0.0, 1.0)]])
    logits_v = logits_map([[(0.0, 0.0), (3.0, 0.0)]])
    target = torch.zeros(1, 1, 2, dtype=torch.long)
    loss_c, loss_v = bsd_pixel_loss(logits_c, logits_v, target, kl="student_first")
    close(loss_c, kl2((0.0, 1.0), (3.0, 0.0)))
    close(loss_v, kl2((0.0, 0.0), (2.0, 0.0)))


def test_pixel_bsd_student_first_keeps_the_teacher_detached():
    torch.manual_seed(0)
    logits_c = torch.randn(2, 3, 4, 4, requires_grad=True)
    logits_v = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss_c, loss_v = bsd_pixel_loss(logits_c, logits_v, torch.randint(0, 3, (2, 4, 4)), kl="student_first")
    g_cc, g_cv = torch.autograd.grad(loss_c, (logits_c, logits_v), retain_graph=True, allow_unused=True)
    g_vc, g_vv = torch.autograd.grad(loss_v, (logits_c, logits_v), allow_unused=True)
    assert (g_cv is None or not g_cv.any()) and (g_vc is None or not g_vc.any())
    assert g_cc.abs().sum() > 0 and g_vv.abs().sum() > 0


def test_ours_bsd_kl_option_reaches_the_loss():
    from cotrain.config import TrainConfig
    from cotrain.methods import options_for
    from cotrain.pair import build_pair
    torch.manual_seed(0)
    pair = build_pair("mobilenet_v2", "mit_b0", 3, None, "ours", hfd=False, bsd_region=False,
                      bsd_kl="student_first").eval()
    images, target = torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))
    losses = pair.losses(images, target)
    with torch.no_grad():
        z_c, z_v = pair.predict(images)
    p_c, p_v = torch.softmax(z_c, 1), torch.softmax(z_v, 1)
    ce_c = torch.nn.functional.cross_entropy(z_c, target, reduction="none")
    ce_v = torch.nn.functional.cross_entropy(z_v, target, reduction="none")
    vit_teaches = ce_c >= ce_v
    kl_c_v = (p_c * (p_c.log() - p_v.log())).sum(1)  # KL(P^C ‖ P^V), Eq. 4's L_P^C
    close(losses["bsd_p_cnn"], float(kl_c_v[vit_teaches].mean()))
    assert TrainConfig().bsd_kl == "teacher_first"
    with pytest.raises(ValueError, match="bsd_kl"):
        options_for("ours", {"bsd_kl": "symmetric"})
