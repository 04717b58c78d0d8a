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


def _cache(tmp_path, packing=None):
    """A cached GPU measurement for the paper pair at 512², batch 4, bf16 (as the GPU check leaves it)."""
    key = estimate.cache_key("mobilenet_v2+mit_b1", 512, 4, "cuda", "bf16")
    entry = {"step_s": {"vanilla_pair": 0.08, "hfd_bsd": 0.1}, "device_name": "NVIDIA H200", "measured": "2026-12-01"}
    if packing:
        entry["packing_images_per_s"] = packing
    return estimate.update_entries({key: entry}, tmp_path / "steps.json")


def _gpu_cfg(**overrides):
    return resolve("paper", overrides={"cnn": "mobilenet_v2", "vit": "mit_b1", "device": "cuda", "weights": None,
                                       "epochs": 1, **overrides})


def test_makespan_starts_trials_in_order_as_slots_free_up():
    assert estimate.makespan([10, 10, 10, 10], 2) == 20
    assert estimate.makespan([30, 10, 10, 10], 2) == 30
    assert estimate.makespan([5], 8) == 5


def test_gpu_plan_uses_the_cached_step_and_packing_and_counts_gpu_hours_and_wall_time(tmp_path):
    path = _cache(tmp_path, packing={"1": 40.0, "2": 64.0})
    cfg = _gpu_cfg()
    alone = estimate.estimate_trial_seconds(cfg, 0.1, path)
    one = estimate.plan_gpus([[cfg] * 8], gpus=2, gpus_per_trial=1.0, path=path)
    assert one.slots == 2 and one.gpu_hours == pytest.approx(8 * alone / 3600)
    assert one.wall_s == pytest.approx(4 * alone)
    packed = estimate.plan_gpus([[cfg] * 8], gpus=2, gpus_per_trial=0.5, path=path)
    each = estimate.estimate_trial_seconds(cfg, 0.1 * 2 * 40 / 64, path)  # each trial 1.25x slower, measured
    assert packed.slots == 4 and packed.wall_s == pytest.approx(2 * each)
    assert packed.gpu_hours == pytest.approx(8 * each * 0.5 / 3600)
    assert packed.gpu_hours < one.gpu_hours
    lines = packed.lines()
    assert "hfd_bsd 0.1000 s (measured on NVIDIA H200, 2026-12-01)" in lines[0]
    assert "2 trials per GPU, each 1.25x slower than alone (measured by the GPU check)" in lines[0]
    assert lines[-1].startswith("wall time on 2 GPUs: 4 trials at once, about ")
    stages = estimate.plan_gpus([[cfg] * 2, [cfg] * 2], gpus=4, gpus_per_trial=1.0, path=path)
    assert stages.wall_s == pytest.approx(2 * alone)  # the second stage waits for the first


def test_without_a_measurement_the_plan_says_so_and_assumes_no_packing_gain(tmp_path):
    cfg = _gpu_cfg()
    plan = estimate.plan_gpus([[cfg] * 4], gpus=1, gpus_per_trial=0.25, path=tmp_path / "none.json")
    assert "the built-in reference" in plan.lines()[0] and "no gain assumed" in plan.lines()[0]
    with pytest.raises(ValueError, match="more than --gpus 1"):
        estimate.plan_gpus([[cfg.replace(workers=2)]], gpus=1, gpus_per_trial=1.0, path=tmp_path / "none.json")


def test_a_measured_trial_start_up_replaces_the_built_in_one(tmp_path):
    path = tmp_path / "steps.json"
    assert estimate.startup_seconds("cpu", path) == estimate.STARTUP_S
    estimate.write_startup("cpu", 12.5, {"variant": "reuse"}, path)
    assert estimate.startup_seconds("cpu", path) == 12.5
    assert estimate.startup_seconds("cuda", path) == estimate.STARTUP_S
    cfg = resolve("cpu", overrides={"device": "cpu", "epochs": 1, "max_val_images": 10})
    measured, built_in = (estimate.estimate_trial_seconds(cfg, 1.0, p) for p in (path, tmp_path / "x"))
    assert measured - built_in == pytest.approx(12.5 - estimate.STARTUP_S)


def test_cache_updates_merge_cases_instead_of_dropping_them(tmp_path):
    path = tmp_path / "steps.json"
    estimate.update_entries({"k": {"step_s": {"a": 1.0, "b": 2.0}, "measured": "x"}}, path)
    estimate.update_entries({"k": {"step_s": {"b": 3.0}, "measured": "y"}}, path)
    assert estimate.read_cache(path)["k"] == {"step_s": {"a": 1.0, "b": 3.0}, "measured": "y"}


def test_sweep_dry_run_on_gpus_prints_the_measured_step_gpu_hours_and_wall_time(repo, tmp_path, monkeypatch, capsys):
    from tests.conftest import run_main
    monkeypatch.setenv("COTRAIN_STEP_CACHE", str(_cache(tmp_path, packing={"1": 40.0, "2": 64.0})))
    code = run_main(["sweeps/methods.py", "--preset", "paper", "--pair", "mobilenet_v2+mit_b1", "--methods",
                     "vanilla,ours", "--dry-run", "--set", "device=cuda", "--set", "weights=none", "--gpus", "8",
                     "--gpus-per-trial", "0.5"], monkeypatch)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "step times mobilenet_v2+mit_b1|512|4|cuda|bf16: vanilla_pair 0.0800 s, hfd_bsd 0.1000 s" in out
    assert "(measured on NVIDIA H200, 2026-12-01); 2 trials per GPU, each 1.25x slower" in out
    assert "GPU-hours (0.5 GPU per trial)" in out and "wall time on 8 GPUs: 16 trials at once, about" in out


@pytest.mark.parametrize("flags,message", [(["--gpus", "0"], "--gpus 0 is invalid: must be >= 1"),
                                           (["--gpus-per-trial", "1.5"], "--gpus-per-trial 1.5 is invalid"),
                                           (["--gpus", "1", "--workers-per-trial", "2"], "more than --gpus 1")])
def test_sweep_dry_run_refuses_gpu_plans_that_cannot_run_in_one_line(tmp_path, monkeypatch, capsys, flags, message):
    from tests.conftest import run_main
    monkeypatch.setenv("COTRAIN_STEP_CACHE", str(tmp_path / "none.json"))
    code = run_main(["sweeps/methods.py", "--preset", "paper", "--methods", "vanilla", "--dry-run", "--set",
                     "device=cuda", "--set", "weights=none", *flags], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
