"""The student pair: L^C moves only θ^C and its Γs, L^V only θ^V and its Γs (docs/method.md)."""
from __future__ import annotations

import itertools

import pytest
import torch

from cotrain.losses import bsd_pixel_loss, bsd_region_loss
from cotrain.methods import get_method, options_for
from cotrain.models import encoder_names
from cotrain.pair import StudentPair, build_pair

K, SIZE = 3, 64
TERM_KEYS = {"cnn", "vit", "ce_cnn", "ce_vit", "hfd_cnn", "hfd_vit", "bsd_r_cnn", "bsd_r_vit", "bsd_p_cnn",
             "bsd_p_vit", "cnn_teaches_pixels", "cnn_teaches_regions"}

CNNS, VITS = encoder_names("cnn"), encoder_names("vit")
PAPER_PAIRS = {("mobilenet_v2", "mit_b1"), ("resnet50", "mit_b2"), ("mobilenet_v2", "mit_b2"),
               ("resnet50", "mit_b1")}
# Default run: each CNN with MiT-B0, each MiT with MobileNetV2, and the paper's pairs, leaving out
# the big encoders (seconds to initialise on CPU each). The whole cross product runs with -m slow.
BIG = {"resnet101", "mit_b3", "mit_b4", "mit_b5"}
FAST_PAIRS = {(c, v) for c, v in ({(c, "mit_b0") for c in CNNS} | {("mobilenet_v2", v) for v in VITS}
                                  | PAPER_PAIRS) if not {c, v} & BIG}
PAIRS = [pytest.param(c, v, id=f"{c}+{v}", marks=() if (c, v) in FAST_PAIRS else pytest.mark.heavy)
         for c, v in itertools.product(CNNS, VITS)]


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(2, 3, 64, 64) images and labels in 0..2 with ignored rows and one fully ignored 32×32 region."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, SIZE, SIZE, generator=gen)
    target = torch.randint(0, K, (2, SIZE, SIZE), generator=gen)
    target[:, :4] = 255
    target[0, :32, :32] = 255
    return images, target


def pair_of(student, cnn: str, vit: str, **options) -> StudentPair:
    """A pair around cached students (what ``build_pair`` does, without rebuilding the encoders)."""
    c, v = student("cnn", cnn), student("vit", vit)
    torch.manual_seed(0)
    pair = StudentPair(c, v, get_method("ours")(c, v, options_for("ours", options)), K)
    pair.train()
    return pair


def has_grad(p: torch.nn.Parameter) -> bool:
    return p.grad is not None and bool(p.grad.any())


def assert_isolated(pair: StudentPair, images: torch.Tensor, target: torch.Tensor) -> dict:
    """Backward each total alone: its own side gets gradient, the other side none."""
    pair.zero_grad(set_to_none=True)
    losses = pair.losses(images, target)
    for side, other in (("cnn", "vit"), ("vit", "cnn")):
        pair.zero_grad(set_to_none=True)
        losses[side].backward(retain_graph=True)
        leaked = [i for i, p in enumerate(pair.parameters_of(other)) if has_grad(p)]
        assert not leaked, f"L^{side} reached {len(leaked)} {other} parameter(s)"
        assert any(has_grad(p) for p in pair.parameters_of(side)), f"L^{side} moved none of its own parameters"
        gamma_low = getattr(pair.method, f"{side}_side")["gamma_low"] if pair.method.options.hfd else None
        if gamma_low is not None:  # HFD reaches this side's own Γ_1 through the other's frozen stage
            assert all(has_grad(p) for p in gamma_low.proj.parameters())
    pair.zero_grad(set_to_none=True)
    return losses


def assert_sides_partition(pair: StudentPair) -> None:
    cnn_ids = {id(p) for p in pair.parameters_of("cnn")}
    vit_ids = {id(p) for p in pair.parameters_of("vit")}
    assert not cnn_ids & vit_ids
    assert cnn_ids | vit_ids == {id(p) for p in pair.parameters() if p.requires_grad}


@pytest.mark.parametrize("cnn,vit", PAIRS)
def test_gradient_isolation_every_encoder_pair(student, cnn, vit):
    pair = pair_of(student, cnn, vit)
    assert_sides_partition(pair)
    images, target = batch()
    losses = assert_isolated(pair, images, target)
    assert all(torch.isfinite(v).all() for v in losses.values())


@pytest.mark.parametrize("options", [
    pytest.param({"bsd_region": False, "bsd_pixel": False}, id="hfd-only"),
    pytest.param({"hfd": False}, id="bsd-only"),
    pytest.param({"hfd": False, "bsd_pixel": False}, id="bsd-region-only"),
    pytest.param({"hfd": False, "bsd_region": False, "bsd_pixel": False}, id="all-off"),
])
def test_switch_variants_stay_isolated(options):
    torch.manual_seed(0)
    pair = build_pair("mobilenet_v2", "mit_b0", K, weights=None, **options)
    pair.train()
    assert_sides_partition(pair)
    losses = assert_isolated(pair, *batch(1))
    off = {"hfd": ("hfd",), "bsd_region": ("bsd_r",), "bsd_pixel": ("bsd_p",)}
    for switch, prefixes in off.items():
        for prefix in prefixes:
            for side in ("cnn", "vit"):
                value = losses[f"{prefix}_{side}"].item()
                assert (value == 0.0) if not options.get(switch, True) else value >= 0.0
    assert ("gamma_low" in pair.method.cnn_side) == options.get("hfd", True)
    assert ("gamma_last" in pair.method.vit_side) == options.get("bsd_region", True)
    if len(options) == 3:  # all off: the totals are the plain cross-entropies
        assert losses["cnn"].item() == losses["ce_cnn"].item() and losses["vit"].item() == losses["ce_vit"].item()


def test_losses_dict_keys_and_weighting():
    torch.manual_seed(0)
    alpha, beta, gamma = 0.5, 0.3, 2.0
    pair = build_pair("mobilenet_v2", "mit_b0", K, weights=None, alpha=alpha, beta=beta, gamma=gamma)
    pair.train()
    losses = pair.losses(*batch(2))
    assert TERM_KEYS <= set(losses)
    for key, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value), key
        assert value.requires_grad == (key in ("cnn", "vit")), key
    for key in ("cnn_teaches_pixels", "cnn_teaches_regions"):
        assert 0.0 <= float(losses[key]) <= 1.0
    for side in ("cnn", "vit"):
        expected = (losses[f"ce_{side}"] + beta * losses[f"hfd_{side}"]
                    + gamma * (losses[f"bsd_r_{side}"] + alpha * losses[f"bsd_p_{side}"]))
        torch.testing.assert_close(losses[side].detach(), expected)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_pair_pixel_terms_equal_the_functional_bsd_pixel_loss(temperature: float):
    torch.manual_seed(0)
    pair = build_pair("mobilenet_v2", "mit_b0", K, weights=None, hfd=False, bsd_region=False,
                      temperature=temperature)
    pair.eval()  # fixed BatchNorm statistics: the students' second forward gives the same logits
    images, target = batch(3)
    losses = pair.losses(images, target)
    with torch.no_grad():
        expected = bsd_pixel_loss(pair.cnn(images).logits, pair.vit(images).logits, target, temperature=temperature)
    torch.testing.assert_close(losses["bsd_p_cnn"], expected[0])
    torch.testing.assert_close(losses["bsd_p_vit"], expected[1])


@pytest.mark.parametrize("norm", ["batch", "image"])
def test_region_grid_and_bsd_norm_reach_the_region_terms(norm: str):
    """A configured grid (here 4×4, not the default 2×2) is the one Γ_l pools to and m̂ is decided on."""
    torch.manual_seed(0)
    pair = build_pair("mobilenet_v2", "mit_b0", K, weights=None, hfd=False, bsd_pixel=False,
                      region_grid="4x4", bsd_norm=norm).eval()
    images, target = batch(4)
    losses = pair.losses(images, target)
    with torch.no_grad():
        out_c, out_v = pair.cnn(images), pair.vit(images)
        feat_c = pair.method.cnn_side["gamma_last"](out_c.last, (4, 4))
        feat_v = pair.method.vit_side["gamma_last"](out_v.last, (4, 4))
        expected = bsd_region_loss(feat_c, feat_v, out_c.logits, out_v.logits, target, norm=norm)
    assert feat_c.shape[-2:] == (4, 4)
    torch.testing.assert_close(losses["bsd_r_cnn"], expected[0])
    torch.testing.assert_close(losses["bsd_r_vit"], expected[1])


def test_build_pair_rejects_bad_options():
    with pytest.raises(ValueError, match="unknown loss option"):
        build_pair("mobilenet_v2", "mit_b0", K, weights=None, alpah=1.0)
    with pytest.raises(ValueError, match="num_classes"):
        build_pair("mobilenet_v2", "mit_b0", 1, weights=None)
    with pytest.raises(ValueError, match="unknown side"):
        build_pair("mobilenet_v2", "mit_b0", K, weights=None).parameters_of("teacher")


def test_predict_returns_both_logits_at_input_size():
    pair = build_pair("mobilenet_v2", "mit_b0", K, weights=None).eval()
    with torch.no_grad():
        logits_c, logits_v = pair(batch()[0])
    assert logits_c.shape == logits_v.shape == (2, K, SIZE, SIZE)


@pytest.mark.parametrize("method,options,reported", [
    pytest.param("ours", {}, True, id="ours"),
    pytest.param("ours", {"bsd_pixel": False}, True, id="ours-bsd-region-only"),
    pytest.param("ours", {"bsd_region": False, "bsd_pixel": False}, False, id="ours-hfd-only"),
    pytest.param("vanilla", {}, False, id="vanilla"),
    pytest.param("dml", {}, False, id="dml"),
])
def test_direction_shares_only_where_a_teacher_is_selected(student, method, options, reported):
    """Issue #25: Vanilla and DML reported "where the CNN teaches" although neither picks a teacher, so a table
    of such methods got a distillation-direction figure; only BSD (``Method.selects_teacher``) reports it."""
    c, v = student("cnn", "mobilenet_v2"), student("vit", "mit_b0")
    torch.manual_seed(0)
    pair = StudentPair(c, v, get_method(method)(c, v, options_for(method, options)), K)
    with torch.no_grad():
        losses = pair.losses(*batch(3))
    shares = {"cnn_teaches_pixels", "cnn_teaches_regions"}
    assert (shares <= set(losses)) == reported and (not shares & set(losses)) == (not reported)
