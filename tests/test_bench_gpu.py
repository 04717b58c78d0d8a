"""The GPU check: its dry run, its guards (a failing or slow case does not stop the rest), its
goals, and (slow) every non-CUDA code path at a tiny size on CPU through real Ray."""
from __future__ import annotations

import csv
import shutil
import tempfile
import time

import pytest

from cotrain import bench_gpu
from tests.conftest import run_script


def _ok() -> dict:
    return {"step_s": 0.5, "images_per_s": 8.0}


def _boom() -> dict:
    raise RuntimeError("compile failed\nsecond line")


def _slow() -> dict:
    time.sleep(60)
    return {}


def _case(check: str, fn, limit_s: float = 30) -> bench_gpu.Case:
    return bench_gpu.Case(check, {"case": check}, limit_s, fn, ())


def test_dry_run_lists_every_case_within_the_budget_and_writes_nothing(repo, tmp_path):
    done = run_script(["-m", "cotrain.bench_gpu", "--dry-run", "--out", str(tmp_path / "g.csv")], cwd=repo,
                      timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("would run 17 cases on cuda, at most 540 s overall (512x512, batch 4")
    for pair in bench_gpu.PAIRS:
        for precision in ("fp32", "bf16", "bf16_cl"):
            for case in bench_gpu.STEP_CASES:
                assert any(f"{pair} {precision} {case}" in line for line in lines)
    assert sum("packing" in line for line in lines) == 2
    assert sum(line.strip().startswith("compile") for line in lines) == 2
    assert "(trial: skipped, no --camvid-root)" in done.stdout
    assert not (tmp_path / "g.csv").exists()


def test_plan_adds_the_camvid_trial_when_given_a_root():
    cases = bench_gpu.plan_cases(bench_gpu.Plan(), "/data/CamVid")
    trial = [c for c in cases if c.check == "trial"]
    assert len(trial) == 1
    cfg = trial[0].args[0]
    assert (cfg.dataset, cfg.preset, cfg.epochs, cfg.weights, cfg.crop_size) == ("camvid", "paper", 1, None, 352)


@pytest.mark.parametrize("args,message", [
    (["--budget-s", "0"], "--budget-s 0 is invalid: must be > 0"),
    (["--camvid-root", "/nonexistent/CamVid"], "--camvid-root /nonexistent/CamVid is invalid: not a folder"),
    (["--only", "nothing"], "argument --only: invalid choice"),
])
def test_bad_values_fail_at_start_with_one_line(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        bench_gpu.main([*args, "--out", str(tmp_path / "g.csv")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "g.csv").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the refusal without a GPU")
def test_without_a_gpu_the_full_check_is_refused_before_anything_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_gpu.main(["--only", "step", "--out", str(tmp_path / "g.csv")])
    assert exit_.value.code == 2 and "no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "g.csv").exists()


def test_a_failing_or_slow_case_is_recorded_and_the_rest_still_run():
    rows = bench_gpu.run_check([_case("boom", _boom), _case("slow", _slow, limit_s=3), _case("ok", _ok)],
                               budget_s=120)
    assert [r["status"] for r in rows] == ["failed", "timeout", "ok"]
    assert rows[0]["note"] == "RuntimeError: compile failed"
    assert rows[2]["images_per_s"] == 8.0


def test_cases_that_do_not_fit_the_budget_are_skipped():
    rows = bench_gpu.run_check([_case("slow", _slow, limit_s=4), _case("ok", _ok)], budget_s=5)
    assert [r["status"] for r in rows] == ["timeout", "skipped"]


def test_goals_are_ratios_of_the_measured_rows():
    def step(precision, case, seconds):
        return {"check": "step", "status": "ok", "pair": "p", "precision": precision, "case": case,
                "step_s": seconds, "images_per_s": 4 / seconds}
    rows = [step("fp32", "vanilla_pair", 0.2), step("fp32", "hfd_bsd", 0.3), step("bf16_cl", "vanilla_pair", 0.1),
            step("bf16_cl", "hfd_bsd", 0.11),
            {"check": "packing", "status": "ok", "pair": "p", "trials": 1, "images_per_s": 10.0},
            {"check": "packing", "status": "ok", "pair": "p", "trials": 2, "images_per_s": 14.0}]
    found = {g["goal"]: g for g in bench_gpu.goals(rows)}
    assert found["bf16 / fp32 images/s"]["measured"] == pytest.approx(0.3 / 0.11, abs=1e-3)
    assert found["bf16 / fp32 images/s"]["met"] == "yes"
    assert found["HFD + BSD step / Vanilla step"]["measured"] == pytest.approx(1.1)  # bf16_cl, the training default
    assert found["two trials per GPU / one, images/s"]["met"] == "no"


def test_step_case_measures_the_real_training_step_at_a_tiny_size():
    plan = bench_gpu.Plan(**bench_gpu.QUICK)
    row = bench_gpu.measure_step(bench_gpu.step_settings(plan, "mobilenet_v2+mit_b0", "fp32"), "hfd_bsd")
    assert row["step_s"] > 0 and row["peak_mem_mb"] >= 0
    assert row["images_per_s"] == pytest.approx(plan.batch / row["step_s"])


@pytest.mark.slow
def test_quick_run_packs_trials_and_runs_a_trial_through_ray(repo, tmp_path):
    out, ray_tmp = tmp_path / "gpu_check.csv", tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short socket paths
    try:
        done = run_script(["-m", "cotrain.bench_gpu", "--quick", "--only", "packing", "trial", "--out", str(out)],
                          cwd=repo, timeout=1200, env={"RAY_TMPDIR": ray_tmp})
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = list(csv.DictReader(out.open()))
    assert [r["status"] for r in rows] == ["ok"] * 3
    packing = {r["trials"]: r for r in rows if r["check"] == "packing"}
    assert set(packing) == {"1", "2"} and all(float(r["images_per_s"]) > 0 for r in packing.values())
    trial = [r for r in rows if r["check"] == "trial"]
    assert len(trial) == 1 and 0 <= float(trial[0]["miou_cnn"]) <= 100
    assert "two trials per GPU / one, images/s" in done.stdout  # the goals table
