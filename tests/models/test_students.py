"""Students: stage shapes for every registered encoder, the stride-8 stage, local weights, sizes."""
from __future__ import annotations

import pytest
import torch

from cotrain.models import ENCODERS, build_student, encoder_names

BIG = {"resnet101", "mit_b3", "mit_b4", "mit_b5"}  # seconds to initialise on CPU: run with -m slow
ALL_ENCODERS = [pytest.param(ENCODERS[n].kind, n, id=n, marks=pytest.mark.heavy if n in BIG else ())
                for n in sorted(ENCODERS)]
SIZE = 64


@pytest.mark.parametrize("kind,name", ALL_ENCODERS)
@torch.no_grad()
def test_stage_shapes(student, kind, name):
    model = student(kind, name)
    model.eval()
    out = model(torch.randn(2, 3, SIZE, SIZE))
    low, mid, last = model.channels
    assert out.logits.shape == (2, 3, SIZE, SIZE)
    assert out.low.shape == (2, low, SIZE // 4, SIZE // 4)
    assert out.mid.shape == (2, mid, SIZE // 8, SIZE // 8)
    last_stride = 32 if kind == "vit" else 16  # DeepLabV3+ runs at output stride 16
    assert out.last.shape == (2, last, SIZE // last_stride, SIZE // last_stride)


@pytest.mark.parametrize("kind,name", ALL_ENCODERS)
def test_stride8_stage_maps_stride4_to_mid_shape(student, kind, name):
    model = student(kind, name)
    model.train()
    model.zero_grad(set_to_none=True)
    low, mid, _ = model.channels
    x = torch.randn(2, low, SIZE // 4, SIZE // 4, requires_grad=True)
    y = model.run_stride8_stage(x, frozen=False)
    assert y.shape == (2, mid, SIZE // 8, SIZE // 8)
    y.square().mean().backward()
    assert any(p.grad is not None and p.grad.any() for p in model.stride8_stage.parameters())


@pytest.mark.parametrize("kind,name", [("cnn", "mobilenet_v2"), ("cnn", "resnet18"), ("vit", "mit_b0")])
def test_frozen_stride8_stage_gets_no_gradient_and_keeps_batchnorm_stats(student, kind, name):
    model = student(kind, name)
    model.train()
    model.zero_grad(set_to_none=True)
    stage = model.stride8_stage
    before = {k: v.clone() for k, v in stage.state_dict().items()}
    low, mid, _ = model.channels
    x = torch.randn(2, low, SIZE // 4, SIZE // 4, requires_grad=True)
    y = model.run_stride8_stage(x, frozen=True)
    assert y.shape == (2, mid, SIZE // 8, SIZE // 8)
    y.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradient still reaches the input (Γ)
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    after = stage.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "frozen stage changed its buffers"
    if kind == "cnn":  # the unfrozen call does move BatchNorm statistics: the check above is meaningful
        model.run_stride8_stage(x.detach(), frozen=False)
        assert any(not torch.equal(before[k], v) for k, v in stage.state_dict().items() if "running" in k)


# ---------------------------------------------------------------- local weights

@pytest.mark.parametrize("kind,name", [("cnn", "mobilenet_v2"), ("vit", "mit_b0")])
def test_local_encoder_state_dict_loads(tmp_path, kind, name):
    torch.manual_seed(1)
    source = build_student(kind, name, 3)
    path = tmp_path / "encoder.pth"
    state = dict(source.model.encoder.state_dict())
    state["classifier.1.weight"] = torch.zeros(2, 2)  # ImageNet classifiers are dropped
    torch.save(state, path)
    torch.manual_seed(2)
    loaded = build_student(kind, name, 3, weights=path)
    for key, value in source.model.encoder.state_dict().items():
        assert torch.equal(loaded.model.encoder.state_dict()[key], value), key


@pytest.mark.parametrize("kind,name", [("cnn", "mobilenet_v2"), ("vit", "mit_b0")])
def test_local_whole_model_state_dict_loads(tmp_path, kind, name):
    torch.manual_seed(1)
    source = build_student(kind, name, 3)
    path = tmp_path / "model.pt"
    torch.save({"state_dict": source.model.state_dict()}, path)
    torch.manual_seed(2)
    loaded = build_student(kind, name, 3, weights=str(path))
    for key, value in source.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key


def test_corrupt_weights_file_names_the_file(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="broken.pth"):
        build_student("cnn", "mobilenet_v2", 3, weights=path)


def test_missing_or_mismatched_weights_file_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="missing.pth"):
        build_student("cnn", "mobilenet_v2", 3, weights=tmp_path / "missing.pth")
    path = tmp_path / "other.pth"
    torch.save({"some.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="other.pth"):
        build_student("vit", "mit_b0", 3, weights=path)


def test_unknown_encoder_names_the_allowed_ones():
    with pytest.raises(ValueError, match="mobilenet_v2"):
        build_student("cnn", "mit_b1", 3)


# ---------------------------------------------------------------- sizes (docs/method.md, "Students")

@pytest.mark.parametrize("kind,name,millions", [("cnn", "mobilenet_v2", 4.4), ("cnn", "resnet50", 26.7),
                                                ("vit", "mit_b1", 13.7), ("vit", "mit_b2", 24.7)])
def test_paper_student_sizes_at_21_classes(student, kind, name, millions):
    count = sum(p.numel() for p in student(kind, name, 21).parameters())
    assert count / 1e6 == pytest.approx(millions, rel=0.02)


def test_registry_lists_both_kinds():
    assert {"mobilenet_v2", "resnet50"} <= set(encoder_names("cnn"))
    assert {"mit_b1", "mit_b2"} <= set(encoder_names("vit"))
    assert not set(encoder_names("cnn")) & set(encoder_names("vit"))


def _aspp_rates(cnn) -> list[int]:
    """Dilation rates of the built DeepLabV3+'s ASPP branches, in order."""
    convs = [m for m in cnn.model.decoder.aspp.modules() if isinstance(m, torch.nn.Conv2d)]
    return [m.dilation[0] for m in convs if m.dilation[0] > 1]


def test_deeplabv3plus_uses_the_output_stride_16_aspp_rates_by_default():
    assert _aspp_rates(build_student("cnn", "mobilenet_v2", 3)) == [6, 12, 18]


def test_aspp_rates_come_from_the_config():
    from cotrain.config import resolve
    from cotrain.pair import build_pair

    cfg = resolve("smoke", overrides={"aspp_rates": "12,24,36"})
    pair = build_pair(cfg.cnn, cfg.vit, 3, None, "vanilla", **cfg.pair_options())
    assert _aspp_rates(pair.cnn) == [12, 24, 36]
