"""Baselines (Offline KD, DML, KDCL, IFVD): hand-worked losses, gradient isolation, frozen teachers."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cotrain.config import TrainConfig
from cotrain.losses import log_probs
from cotrain.losses.kd import ifv_map, kd_kl_loss, minlogit_ensemble, naive_ensemble
from cotrain.methods import METHODS, get_method, needs_teachers, options_for
from cotrain.methods.base import PairContext
from cotrain.models import StudentOutput
from cotrain.pair import build_pair

K = 3
SIZE = 64
LN3 = math.log(3.0)


def _out(logits: torch.Tensor, last: torch.Tensor | None = None, decoded: torch.Tensor | None = None) -> StudentOutput:
    last = torch.zeros(1, 1, 1, 1) if last is None else last
    return StudentOutput(logits, None, None, last, decoded)


def _ctx(z_c: torch.Tensor, z_v: torch.Tensor, target: torch.Tensor,
         last_c: torch.Tensor | None = None, last_v: torch.Tensor | None = None,
         decoded_c: torch.Tensor | None = None, decoded_v: torch.Tensor | None = None) -> PairContext:
    """A PairContext from hand-written tensors (students unused by these methods' logit/feature math)."""
    valid = target != 255
    ce_c, ce_v = (torch.nn.functional.cross_entropy(z, target, ignore_index=255, reduction="none") for z in (z_c, z_v))
    return PairContext(None, None, None, _out(z_c, last_c, decoded_c), _out(z_v, last_v, decoded_v), target, valid,
                       ce_c, ce_v, log_probs(z_c), log_probs(z_v))


def _terms(name: str, ctx: PairContext, **options) -> dict[str, torch.Tensor]:
    kd_c, kd_v, named = get_method(name)(None, None, options_for(name, options)).terms(ctx)
    assert torch.equal(kd_c, named["kd_cnn"]) and torch.equal(kd_v, named["kd_vit"])
    return named


def _pixels(*columns: list[float]) -> torch.Tensor:
    """Logits (1, K, 1, P) from P per-pixel logit vectors."""
    return torch.tensor(columns, dtype=torch.float32).T.reshape(1, len(columns[0]), 1, len(columns))


# ---------------------------------------------------------------- losses by hand

def test_kd_kl_loss_by_hand_with_temperature_and_ignored_pixel():
    teacher = _pixels([0.0, 0.0], [9.0, -9.0])
    student = _pixels([0.0, 2 * LN3], [-9.0, 9.0])   # at T = 2: [0, ln 3] -> p_s = (1/4, 3/4)
    valid = torch.tensor([[[True, False]]])          # the disagreeing second pixel is ignored
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert kd_kl_loss(teacher, student, valid, temperature=2.0).item() == pytest.approx(4 * kl, rel=1e-5)


def test_dml_by_hand():
    z_c = _pixels([0.0, 0.0], [0.0, LN3], [5.0, -5.0])   # p_c = (1/2, 1/2), (1/4, 3/4)
    z_v = _pixels([0.0, LN3], [0.0, 0.0], [-5.0, 5.0])   # p_v = (1/4, 3/4), (1/2, 1/2)
    target = torch.tensor([[[0, 1, 255]]])
    kl_v_c = [0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5),
              0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)]
    kl_c_v = [0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75),
              0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)]
    named = _terms("dml", _ctx(z_c, z_v, target), kd_weight=0.5)
    assert named["kd_cnn"].item() == pytest.approx(0.5 * sum(kl_v_c) / 2, rel=1e-5)
    assert named["kd_vit"].item() == pytest.approx(0.5 * sum(kl_c_v) / 2, rel=1e-5)


def test_kdcl_logit_mean_by_hand():
    z_c, z_v = _pixels([0.0, 2.0]), _pixels([0.0, 0.0])  # ensemble logits (0, 1)
    e = math.e
    p_ens = (1 / (1 + e), e / (1 + e))
    p_c = (1 / (1 + e ** 2), e ** 2 / (1 + e ** 2))
    kl_c = p_ens[0] * math.log(p_ens[0] / p_c[0]) + p_ens[1] * math.log(p_ens[1] / p_c[1])
    kl_v = p_ens[0] * math.log(p_ens[0] / 0.5) + p_ens[1] * math.log(p_ens[1] / 0.5)
    named = _terms("kdcl", _ctx(z_c, z_v, torch.tensor([[[1]]])), kdcl_mode="logit_mean", kd_weight=2.0)
    assert named["kd_cnn"].item() == pytest.approx(2.0 * kl_c, rel=1e-5)
    assert named["kd_vit"].item() == pytest.approx(2.0 * kl_v, rel=1e-5)


def test_minlogit_ensemble_by_hand():
    z_c = _pixels([1.0, 3.0, 0.0], [1.0, 3.0, 0.0])
    z_v = _pixels([2.0, 1.0, 4.0], [2.0, 1.0, 4.0])
    target = torch.tensor([[[0, 255]]])
    ens = minlogit_ensemble([z_c, z_v], target, target != 255)
    # valid pixel, gt 0: min((1,3,0) - 1, (2,1,4) - 2) = min((0,2,-1), (0,-1,2)); ignored pixel: mean.
    expected = _pixels([0.0, -1.0, -1.0], [(1 + 2) / 2, (3 + 1) / 2, (0 + 4) / 2])
    assert torch.allclose(ens, expected)


def test_kdcl_minlogit_by_hand():
    z_c, z_v = _pixels([1.0, 3.0, 0.0]), _pixels([2.0, 1.0, 4.0])
    ens = [0.0, -1.0, -1.0]

    def log_z(z: list[float]) -> float:
        return math.log(sum(math.exp(v) for v in z))

    p = [math.exp(v - log_z(ens)) for v in ens]

    def kl(z: list[float]) -> float:
        return sum(pk * ((e - log_z(ens)) - (v - log_z(z))) for pk, e, v in zip(p, ens, z))

    named = _terms("kdcl", _ctx(z_c, z_v, torch.tensor([[[0]]])), kdcl_mode="minlogit")
    assert named["kd_cnn"].item() == pytest.approx(kl([1.0, 3.0, 0.0]), rel=1e-5)
    assert named["kd_vit"].item() == pytest.approx(kl([2.0, 1.0, 4.0]), rel=1e-5)


def test_kdcl_rejects_unknown_mode():
    with pytest.raises(ValueError, match="kdcl_mode"):
        options_for("kdcl", {"kdcl_mode": "max"})


def test_kdcl_default_is_minlogit():
    assert get_method("kdcl").Options().kdcl_mode == "minlogit" and TrainConfig().kdcl_mode == "minlogit"


def _two_images_each_won_by_one_student() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two 1×2-pixel images, gt class 0: the CNN is better on image 0, the ViT on image 1."""
    good, bad = [3.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    z_c = torch.cat([_pixels(good, good), _pixels(bad, bad)])
    z_v = torch.cat([_pixels(bad, [0.5, 0.0, 0.0]), _pixels(good, [4.0, 0.0, 0.0])])
    return z_c, z_v, torch.zeros(2, 1, 2, dtype=torch.long)


def test_naive_ensemble_picks_the_lower_ce_student_per_image():
    z_c, z_v, target = _two_images_each_won_by_one_student()
    ces = [torch.nn.functional.cross_entropy(z, target, reduction="none") for z in (z_c, z_v)]
    ens = naive_ensemble([z_c, z_v], ces, target != 255)
    assert torch.equal(ens[0], z_c[0]) and torch.equal(ens[1], z_v[1])


def test_naive_ensemble_all_ignored_image_is_a_tie_won_by_the_cnn():
    z_c, z_v, target = _two_images_each_won_by_one_student()
    target[1] = 255
    ces = [torch.nn.functional.cross_entropy(z, target, ignore_index=255, reduction="none") for z in (z_c, z_v)]
    ens = naive_ensemble([z_c, z_v], ces, target != 255)
    assert torch.equal(ens[0], z_c[0]) and torch.equal(ens[1], z_c[1])


def test_kdcl_naive_teacher_distils_nothing_on_its_own_image():
    z_c, z_v, target = _two_images_each_won_by_one_student()
    named = _terms("kdcl", _ctx(z_c, z_v, target), kdcl_mode="naive")
    # Each student is the teacher on one of the two images (KL 0 there): its term is the other image's KL / 2.
    kl_c = kd_kl_loss(z_v[1:], z_c[1:], target[1:] != 255)
    kl_v = kd_kl_loss(z_c[:1], z_v[:1], target[:1] != 255)
    assert named["kd_cnn"].item() == pytest.approx(kl_c.item() / 2, rel=1e-5)
    assert named["kd_vit"].item() == pytest.approx(kl_v.item() / 2, rel=1e-5)
    assert kl_c > 0 and kl_v > 0


def _grid(*rows: list[list[float]]) -> torch.Tensor:
    """Features (1, C, h, w) from rows of per-position C-vectors."""
    return torch.tensor(rows, dtype=torch.float32).permute(2, 0, 1).unsqueeze(0)


def test_ifv_map_by_hand():
    feats = _grid([[1.0, 0.0], [0.0, 1.0]], [[3.0, 4.0], [5.0, 5.0]])
    labels = torch.tensor([[[0, 0], [1, 0]]])
    valid = torch.tensor([[[True, True], [True, False]]])
    # class 0 prototype = mean((1,0), (0,1)) = (.5,.5): cos = .5 / (1·√.5); class 1 = (3,4) itself: cos = 1.
    c0 = 0.5 / (1.0 * math.sqrt(0.5))
    expected = torch.tensor([[[c0, c0], [1.0, 0.0]]])
    assert torch.allclose(ifv_map(feats, labels, valid, num_classes=2), expected, atol=1e-6)


def _ifvd_inputs() -> dict[str, torch.Tensor]:
    """Labels 0, 0 / 1, ignored in 2×2 blocks of a 4×4 image, and features whose IFV maps are known.

    On the 2×2 grid: IFV of ``a`` = (1, 1, 1), IFV of ``b`` = (1/√2, 1/√2, 1) on the three valid positions.
    """
    target = torch.tensor([[0, 0], [1, 255]]).repeat_interleave(2, 0).repeat_interleave(2, 1).unsqueeze(0)
    a = _grid([[1.0, 0.0], [1.0, 0.0]], [[0.0, 2.0], [7.0, 7.0]])
    b = _grid([[1.0, 0.0], [0.0, 1.0]], [[3.0, 4.0], [5.0, 5.0]])
    return {"target": target, "a": a, "b": b}


# Over all four grid positions (the ignored one adds 0 but counts, as in the reference): two differ by 1 − 1/√2.
IFV_MSE = 2 * (1.0 - 1 / math.sqrt(2)) ** 2 / 4


def test_ifvd_last_features_by_hand_at_the_vit_grid():
    x = _ifvd_inputs()
    # CNN features constant per 2×2 block, so average-pooling to the ViT's 2×2 grid gives exactly ``a``.
    last_c = x["a"].repeat_interleave(2, 2).repeat_interleave(2, 3)
    logits = torch.zeros(1, 2, 4, 4)
    named = _terms("ifvd", _ctx(logits, logits, x["target"], last_c, x["b"]),
                   ifvd_mode="mutual", ifvd_features="last", ifvd_weight=3.0, ifvd_kd_weight=0.0)
    assert named["kd_cnn"].item() == pytest.approx(3.0 * IFV_MSE, rel=1e-5)
    assert named["kd_vit"].item() == pytest.approx(3.0 * IFV_MSE, rel=1e-5)


def test_ifvd_mutual_is_the_reference_objective_on_decoder_features():
    """λ_ifv = 200 on the features before the classifier, plus λ_kd = 10 on the class-mean KL (IFVD's reference)."""
    x = _ifvd_inputs()
    g = torch.Generator().manual_seed(0)
    z_c, z_v = torch.randn(1, 2, 4, 4, generator=g), torch.randn(1, 2, 4, 4, generator=g)
    # Encoder features with identical IFV maps: a default that read them would give an IFV term of 0.
    same = torch.ones(1, 2, 2, 2)
    named = _terms("ifvd", _ctx(z_c, z_v, x["target"], same, same, decoded_c=x["a"], decoded_v=x["b"]),
                   ifvd_mode="mutual")
    valid = x["target"] != 255
    # nn.KLDivLoss()'s mean runs over the K = 2 classes too: the per-pixel KL / 2.
    assert named["ifv_cnn"].item() == pytest.approx(IFV_MSE, rel=1e-5)
    assert named["pkd_cnn"].item() == pytest.approx(kd_kl_loss(z_v, z_c, valid).item() / 2, rel=1e-5)
    assert named["kd_cnn"].item() == pytest.approx(200 * IFV_MSE + 10 * named["pkd_cnn"].item(), rel=1e-5)
    assert named["kd_vit"].item() == pytest.approx(200 * IFV_MSE + 10 * kd_kl_loss(z_c, z_v, valid).item() / 2,
                                                   rel=1e-5)


def test_ifvd_is_offline_by_default_and_needs_teachers():
    """The ICCV paper counts IFVD with Offline KD among its offline methods (§4.1-4.2)."""
    assert options_for("ifvd", {}).ifvd_mode == "offline" and TrainConfig().ifvd_mode == "offline"
    assert needs_teachers({"method": "ifvd"}) and not needs_teachers({"method": "ifvd", "ifvd_mode": "mutual"})


@pytest.mark.parametrize("method", sorted(METHODS))
def test_needs_teachers_is_declared_by_each_method(method):
    assert needs_teachers({"method": method}) == (method in ("offline_kd", "ifvd"))
    assert needs_teachers(TrainConfig(method=method).to_dict()) == (method in ("offline_kd", "ifvd"))


def test_needs_teachers_without_a_method_is_false():
    assert not needs_teachers({}) and not needs_teachers({"ifvd_mode": "offline"})


def test_ifvd_rejects_unknown_mode():
    with pytest.raises(ValueError, match="ifvd_mode"):
        options_for("ifvd", {"ifvd_mode": "online"})


def test_ifvd_rejects_unknown_features():
    with pytest.raises(ValueError, match="ifvd_features"):
        options_for("ifvd", {"ifvd_features": "stage3"})


# ---------------------------------------------------------------- real tiny pairs

def _save_vanilla(path: Path, num_classes: int = K, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    pair = build_pair("mobilenet_v2", "mit_b0", num_classes, None, "vanilla")
    config = TrainConfig(cnn="mobilenet_v2", vit="mit_b0", method="vanilla", num_classes=num_classes)
    path.mkdir(parents=True, exist_ok=True)
    torch.save({"pair": pair.state_dict(), "config": config.to_dict(), "num_classes": num_classes, "epoch": 1},
               path / "checkpoint.pt")
    return path


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory) -> str:
    return str(_save_vanilla(tmp_path_factory.mktemp("vanilla_teacher")))


def _pair(method: str, teacher_ckpt: str, **options):
    if needs_teachers({"method": method, **options}):
        options = {"teacher_cnn": teacher_ckpt, "teacher_vit": teacher_ckpt, **options}
    torch.manual_seed(1)
    return build_pair("mobilenet_v2", "mit_b0", K, None, method, **options)


def _batch(all_ignored: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    images = torch.randn(2, 3, SIZE, SIZE, generator=g)
    target = torch.randint(0, K, (2, SIZE, SIZE), generator=g)
    target[:, :8] = 255
    return images, torch.full_like(target, 255) if all_ignored else target


def _grads_zero(params) -> bool:
    return all(p.grad is None or not p.grad.any() for p in params)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_gradient_isolation(method, teacher_ckpt):
    pair = _pair(method, teacher_ckpt).train()
    losses = pair.losses(*_batch())
    losses["cnn"].backward(retain_graph=True)
    assert _grads_zero(pair.parameters_of("vit")), "L^C moved ViT-side parameters"
    assert not _grads_zero(pair.parameters_of("cnn"))
    pair.zero_grad(set_to_none=True)
    losses["vit"].backward()
    assert _grads_zero(pair.parameters_of("cnn")), "L^V moved CNN-side parameters"
    assert not _grads_zero(pair.parameters_of("vit"))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_terms_finite_on_all_ignored_target(method, teacher_ckpt):
    pair = _pair(method, teacher_ckpt).train()
    losses = pair.losses(*_batch(all_ignored=True))
    names = {"cnn", "vit", *get_method(method).term_names}
    assert names <= set(losses)
    assert all(torch.isfinite(losses[n]).all() for n in names), {n: losses[n] for n in names}
    (losses["cnn"] + losses["vit"]).backward()
    assert all(torch.isfinite(p.grad).all() for p in pair.parameters() if p.grad is not None)


@pytest.mark.parametrize("method,options", [("dml", {}), ("kdcl", {}), ("ifvd", {}), ("ifvd", {"ifvd_mode": "mutual"}),
                                            ("offline_kd", {})])
def test_kd_terms_are_positive_on_a_real_batch(method, options, teacher_ckpt):
    losses = _pair(method, teacher_ckpt, **options).losses(*_batch())
    assert losses["kd_cnn"] > 0 and losses["kd_vit"] > 0


def test_ifvd_mutual_gradient_isolation(teacher_ckpt):
    pair = _pair("ifvd", teacher_ckpt, ifvd_mode="mutual").train()
    assert not hasattr(pair.method, "teachers")
    losses = pair.losses(*_batch())
    losses["cnn"].backward()
    assert _grads_zero(pair.parameters_of("vit")) and not _grads_zero(pair.parameters_of("cnn"))


@pytest.mark.parametrize("method", ["offline_kd", "ifvd"])
def test_offline_teachers_are_frozen(method, teacher_ckpt):
    pair = _pair(method, teacher_ckpt)
    teachers = pair.method.teachers
    before = {k: v.clone() for k, v in teachers.state_dict().items()}  # buffers too: BN stats must not move
    trainable = {id(p) for side in ("cnn", "vit") for p in pair.parameters_of(side)}
    assert all(not p.requires_grad and id(p) not in trainable for p in teachers.parameters())
    optims = [torch.optim.SGD(pair.parameters_of(side), lr=0.1) for side in ("cnn", "vit")]
    pair.train()
    assert pair.cnn.training and not any(m.training for m in teachers.modules())
    for _ in range(2):
        losses = pair.losses(*_batch())
        (losses["cnn"] + losses["vit"]).backward()
        for opt in optims:
            opt.step()
            opt.zero_grad()
    assert all(p.grad is None for p in teachers.parameters())
    assert all(torch.equal(before[k], v) for k, v in teachers.state_dict().items())


def test_offline_kd_distils_the_other_architectures_teacher(teacher_ckpt):
    pair = _pair("offline_kd", teacher_ckpt, temperature=2.0).eval()
    images, target = _batch()
    losses = pair.losses(images, target)
    t_vit, t_cnn = pair.method.teachers["of_cnn"], pair.method.teachers["of_vit"]
    assert t_vit.kind == "vit" and t_cnn.kind == "cnn"
    valid = (target != 255).unsqueeze(1)

    def expected(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> float:
        p_t = torch.softmax(teacher_logits / 2, 1)
        kl = (p_t * (torch.log_softmax(teacher_logits / 2, 1) - torch.log_softmax(student_logits / 2, 1))).sum(1)
        return 4 * (kl * valid.squeeze(1)).sum().item() / valid.sum().item()

    with torch.no_grad():
        z_c, z_v = pair.predict(images)
        assert losses["kd_cnn"].item() == pytest.approx(expected(t_vit(images).logits, z_c), rel=1e-4)
        assert losses["kd_vit"].item() == pytest.approx(expected(t_cnn(images).logits, z_v), rel=1e-4)


def test_offline_kd_one_teacher_leaves_the_other_side_without_kd(teacher_ckpt):
    pair = build_pair("mobilenet_v2", "mit_b0", K, None, "offline_kd", teacher_cnn=teacher_ckpt)
    losses = pair.losses(*_batch())
    assert losses["kd_cnn"].item() == 0.0 and losses["kd_vit"].item() > 0
    assert list(pair.method.teachers) == ["of_vit"]


def test_offline_kd_needs_a_teacher():
    with pytest.raises(ValueError, match="offline_kd needs teacher_cnn and/or teacher_vit checkpoint paths"):
        build_pair("mobilenet_v2", "mit_b0", K, None, "offline_kd")


def test_offline_kd_rejects_a_teacher_with_other_classes(tmp_path):
    ckpt = _save_vanilla(tmp_path / "five", num_classes=5)
    with pytest.raises(ValueError, match="predicts 5 classes"):
        build_pair("mobilenet_v2", "mit_b0", K, None, "offline_kd", teacher_vit=str(ckpt))


# ---------------------------------------------------------------- IFVD against its reference, re-typed

def reference_criterion_ifv(feat_s: torch.Tensor, feat_t: torch.Tensor, target: torch.Tensor,
                            num_classes: int) -> torch.Tensor:
    """IFVD's ``CriterionIFV`` (YukangWang/IFVD, utils/criterion.py), re-typed: 255 keeps its own feature."""
    nn = torch.nn
    size_f = (feat_s.shape[2], feat_s.shape[3])
    tar_feat_s = nn.Upsample(size_f, mode="nearest")(target.unsqueeze(1).float()).expand(feat_s.size())
    tar_feat_t = nn.Upsample(size_f, mode="nearest")(target.unsqueeze(1).float()).expand(feat_t.size())
    center_feat_s, center_feat_t = feat_s.clone(), feat_t.clone()
    for i in range(num_classes):
        mask_feat_s = (tar_feat_s == i).float()
        mask_feat_t = (tar_feat_t == i).float()
        center_feat_s = (1 - mask_feat_s) * center_feat_s + mask_feat_s * (
            (mask_feat_s * feat_s).sum(-1).sum(-1) / (mask_feat_s.sum(-1).sum(-1) + 1e-6)).unsqueeze(-1).unsqueeze(-1)
        center_feat_t = (1 - mask_feat_t) * center_feat_t + mask_feat_t * (
            (mask_feat_t * feat_t).sum(-1).sum(-1) / (mask_feat_t.sum(-1).sum(-1) + 1e-6)).unsqueeze(-1).unsqueeze(-1)
    cos = nn.CosineSimilarity(dim=1)
    return nn.MSELoss()(cos(feat_s, center_feat_s), cos(feat_t, center_feat_t))


def reference_criterion_kd(pred: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """IFVD's ``CriterionKD`` (utils/criterion.py), re-typed: ``nn.KLDivLoss()`` with its default mean."""
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that "mean" divides by the classes too: the point here
        return torch.nn.KLDivLoss()(torch.nn.functional.log_softmax(pred, dim=1),
                                    torch.nn.functional.softmax(soft, dim=1))


def test_ifvd_offline_matches_the_reference_with_the_other_architectures_frozen_teacher(teacher_ckpt):
    """λ_ifv·CriterionIFV + λ_kd·CriterionKD (networks/kd_model.py), student = ours, teacher = the checkpoint's
    student of the other architecture; all pixels valid, where the reference's mean and ours agree."""
    from cotrain.models.checkpoint import load_student
    pair = _pair("ifvd", teacher_ckpt).eval()
    images, target = _batch()
    target = torch.where(target == 255, torch.zeros_like(target), target)
    losses = pair.losses(images, target)
    t_vit, t_cnn = load_student(teacher_ckpt, "vit")[0].eval(), load_student(teacher_ckpt, "cnn")[0].eval()
    with torch.no_grad():
        s_c, s_v, o_tv, o_tc = pair.cnn(images), pair.vit(images), t_vit(images), t_cnn(images)
    for student, teacher, side in ((s_c, o_tv, "cnn"), (s_v, o_tc, "vit")):
        ifv = reference_criterion_ifv(student.decoded, teacher.decoded, target, K)
        kd = reference_criterion_kd(student.logits, teacher.logits)
        assert losses[f"ifv_{side}"].item() == pytest.approx(ifv.item(), rel=1e-4, abs=1e-7)
        assert losses[f"pkd_{side}"].item() == pytest.approx(kd.item(), rel=1e-4)
        assert losses[f"kd_{side}"].item() == pytest.approx(200 * ifv.item() + 10 * kd.item(), rel=1e-4)


def test_ifvd_ifv_term_matches_the_reference_with_ignored_pixels(teacher_ckpt):
    pair = _pair("ifvd", teacher_ckpt, ifvd_mode="mutual").eval()
    images, target = _batch()  # a band of 255
    losses = pair.losses(images, target)
    with torch.no_grad():
        out_c, out_v = pair.cnn(images), pair.vit(images)
    expected = reference_criterion_ifv(out_c.decoded, out_v.decoded, target, K)
    assert losses["ifv_cnn"].item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-7)


def test_ifvd_offline_distils_from_frozen_teachers_of_the_other_architecture(teacher_ckpt):
    teachers = _pair("ifvd", teacher_ckpt).method.teachers
    assert teachers["of_cnn"].kind == "vit" and teachers["of_vit"].kind == "cnn"


def test_ifvd_offline_needs_a_teacher():
    with pytest.raises(ValueError, match=r"ifvd \(ifvd_mode=offline\) needs teacher_cnn and/or teacher_vit"):
        build_pair("mobilenet_v2", "mit_b0", K, None, "ifvd")


def test_ifvd_offline_one_teacher_leaves_the_other_side_without_kd(teacher_ckpt):
    pair = build_pair("mobilenet_v2", "mit_b0", K, None, "ifvd", teacher_vit=teacher_ckpt)
    losses = pair.losses(*_batch())
    assert losses["kd_cnn"].item() > 0 and losses["kd_vit"].item() == 0.0


@pytest.mark.parametrize("argv,named", [(["--method", "ifvd"], "method=ifvd (ifvd_mode=offline) needs teacher_cnn"),
                                        (["--method", "offline_kd"], "method=offline_kd needs teacher_cnn")])
def test_a_run_needing_teachers_fails_at_start_with_one_line(tmp_path, capsys, argv, named):
    from cotrain.train import main
    out = tmp_path / "runs"
    with pytest.raises(SystemExit) as info:
        main([*argv, "--preset", "smoke", "--out", str(out), "--direct"])
    assert info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and named in err[0], err
    assert not out.exists() or not any(out.iterdir())
