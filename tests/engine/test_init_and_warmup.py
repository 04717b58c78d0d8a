"""Starting from another run's students (``init_from``) and the KD warm-up (``kd_warmup_epochs``)."""
from __future__ import annotations

import pytest
import torch

from cotrain.config import resolve
from cotrain.engine.loop import build_run, kd_ramp, save
from cotrain.errors import CheckpointError
from cotrain.pair import build_pair


@pytest.fixture(scope="module")
def saved_vanilla(tmp_path_factory):
    """A Vanilla smoke run's checkpoint folder (its students made distinct from a fresh build's)."""
    cfg = resolve("smoke", overrides={"device": "cpu", "method": "vanilla", "seed": 3})
    run = build_run(cfg)
    with torch.no_grad():
        for p in run.pair.parameters():
            p.add_(0.5)
    folder = tmp_path_factory.mktemp("vanilla")
    save(run, 4, folder, {"miou_cnn": 1.0})
    return folder, run.pair.state_dict()


def test_init_from_starts_both_students_from_the_checkpoint_with_fresh_optimisers(saved_vanilla):
    folder, saved = saved_vanilla
    cfg = resolve("smoke", overrides={"device": "cpu", "method": "ours", "init_from": str(folder)})
    run = build_run(cfg)
    for key, value in run.pair.state_dict().items():
        if key.startswith(("cnn.", "vit.")):
            assert torch.equal(value, saved[key]), key
    assert run.start_epoch == 1  # weights only: the schedule starts afresh
    assert all(not opt.state for opt in run.optimizers.values())
    fresh = build_run(cfg.replace(init_from=None))
    assert not torch.equal(fresh.pair.state_dict()["cnn.model.segmentation_head.0.weight"],
                           saved["cnn.model.segmentation_head.0.weight"])


def test_init_from_refuses_other_students(saved_vanilla):
    folder, _ = saved_vanilla
    cfg = resolve("smoke", overrides={"device": "cpu", "vit": "mit_b1", "init_from": str(folder)})
    with pytest.raises(CheckpointError, match="holds vit='mit_b0', the run has vit='mit_b1'"):
        build_run(cfg)


def test_init_from_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve("smoke", overrides={"init_from": "runs/a/checkpoint"}).init_from == str(
        tmp_path / "runs/a/checkpoint")


def test_kd_ramp_rises_linearly_from_zero_over_the_warmup():
    assert kd_ramp(0.0, 1, 1, 10) == 1.0  # off: the paper's form
    assert kd_ramp(2.0, 1, 1, 10) == 0.0
    assert kd_ramp(2.0, 1, 6, 10) == pytest.approx(0.25)
    assert kd_ramp(2.0, 2, 1, 10) == pytest.approx(0.5)
    assert kd_ramp(2.0, 3, 1, 10) == 1.0 and kd_ramp(2.0, 9, 5, 10) == 1.0


def test_kd_weight_scales_only_the_kd_parts():
    torch.manual_seed(0)
    pair = build_pair("mobilenet_v2", "mit_b0", num_classes=4, weights=None, method="ours")
    images, target = torch.randn(2, 3, 64, 64), torch.randint(0, 4, (2, 64, 64))
    pair.eval()  # the same forward twice (no dropout or drop-path)
    full = pair.losses(images, target)
    pair.kd_weight = 0.0
    none = pair.losses(images, target)
    assert torch.allclose(none["cnn"], none["ce_cnn"]) and torch.allclose(none["vit"], none["ce_vit"])
    assert full["cnn"] > full["ce_cnn"]  # the KD terms are there at full weight
    assert torch.equal(full["hfd_cnn"], none["hfd_cnn"])  # reported terms stay unscaled


def test_warmup_is_a_validated_config_key():
    from cotrain.errors import ConfigError
    with pytest.raises(ConfigError, match="kd_warmup_epochs=-1.0 is invalid"):
        resolve("smoke", overrides={"kd_warmup_epochs": -1})
