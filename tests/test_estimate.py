"""The trial-time estimate the sweeps print (cotrain/estimate.py)."""
from __future__ import annotations

import pytest

from cotrain import estimate
from cotrain.config import resolve


def test_estimate_trial_seconds_counts_steps_epochs_and_startup(tmp_path):
    cfg = resolve("cpu", overrides={"device": "cpu", "epochs": 2, "max_val_images": 10, "max_train_steps": None})
    steps = 300 // cfg.batch_size  # the builtin train split holds 300 images
    seconds = estimate.estimate_trial_seconds(cfg, step_s=1.0, cache=tmp_path / "none.json")
    eval_s = 10 * (1.0 / cfg.batch_size / 3)
    assert seconds == pytest.approx(2 * (steps + eval_s) + estimate.STARTUP_S)
    capped = estimate.estimate_trial_seconds(cfg.replace(max_train_steps=5), step_s=1.0, cache=tmp_path / "none.json")
    assert capped < seconds and capped >= 2 * 5 + estimate.STARTUP_S


def test_case_of_follows_method_and_switches():
    cfg = resolve("cpu")
    assert estimate.case_of(cfg) == "hfd_bsd"
    assert estimate.case_of(cfg.replace(hfd=False)) == "bsd"
    assert estimate.case_of(cfg.replace(bsd_region=False, bsd_pixel=False)) == "hfd"
    assert estimate.case_of(cfg.replace(method="vanilla")) == "vanilla_pair"
