"""The GPU check: its dry run (every case and its budget within 8 minutes), its goals, the cache it leaves
for the sweeps' dry run, and (slow) the whole one-process driver at a tiny size on CPU through real Ray.
The driver's guards: tests/test_bench_worker.py."""
from __future__ import annotations

import csv

import pytest

from cotrain import bench_gpu, estimate
from cotrain.config import resolve
from tests.conftest import run_script


def test_dry_run_lists_every_case_and_its_budget_within_eight_minutes(tmp_path, capsys):
    assert bench_gpu.main(["--dry-run", "--out", str(tmp_path / "g.csv")]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("would run 15 cases on cuda in one worker process, within 450 s (512x512, batch 4")
    for pair in bench_gpu.PAIRS:
        for precision in ("fp32", "bf16_cl"):
            for case in bench_gpu.STEP_CASES:
                assert any(f"{pair} {precision} {case}" in line for line in lines)
    packing = [line for line in lines if line.strip().startswith("packing ")]
    assert [line.split()[-4] for line in packing] == ["1", "2", "4", "8"] and "trial(s) per GPU" in packing[0]
    assert sum(line.strip().startswith("compile") for line in lines) == 2
    assert sum(line.strip().startswith("packing_tune") for line in lines) == 1
    assert sum(line.strip().startswith("start") for line in lines) == 1  # Python, torch and CUDA once
    assert "(trial: skipped, no --camvid-root)" in out
    expected = int(lines[-1].split()[1])
    assert expected <= bench_gpu.Plan().budget_s < bench_gpu.SCRIPT_LIMIT_S == 480
    assert not (tmp_path / "g.csv").exists()


def test_plan_adds_the_camvid_trial_last_when_given_a_root():
    cases = bench_gpu.plan_cases(bench_gpu.Plan(), "/data/CamVid")
    assert cases[-1].check == "trial"
    cfg = cases[-1].args[0]
    # The paper preset's 512 crops on every dataset (docs/recipes.md: its crop sentence names no dataset).
    assert (cfg.dataset, cfg.preset, cfg.epochs, cfg.weights, cfg.crop_size) == ("camvid", "paper", 1, None, 512)
    assert [c.check for c in bench_gpu.plan_cases(bench_gpu.Plan(), None, ["cuda_tests"])] == ["cuda_tests"]


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
def test_without_a_gpu_the_full_check_is_refused_before_any_case_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        bench_gpu.main(["--only", "step", "--out", str(tmp_path / "g.csv")])
    assert exit_.value.code == 2 and "no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "g.csv").exists()


def _step(pair, precision, case, seconds, check="step"):
    return {"check": check, "status": "ok", "pair": pair, "precision": precision, "case": case, "step_s": seconds,
            "images_per_s": 4 / seconds}


def _packing(trials, rate):
    return {"check": "packing", "status": "ok", "pair": "p", "trials": trials, "images_per_s": rate}


def test_goals_are_ratios_of_the_measured_rows():
    rows = [_step("p", "fp32", "vanilla_pair", 0.2), _step("p", "fp32", "hfd_bsd", 0.3),
            _step("p", "bf16_cl", "vanilla_pair", 0.1), _step("p", "bf16_cl", "hfd_bsd", 0.11),
            _step("p", "bf16_cl_compile", "vanilla_pair", 0.05, "compile"),
            _step("p", "bf16_cl_compile", "hfd_bsd", 0.06, "compile"),
            _packing(1, 10.0), _packing(2, 14.0), _packing(4, 26.0)]
    found = {(g["goal"], g["on"]): g for g in bench_gpu.goals(rows)}
    bf16 = found[("bf16 / fp32 images/s", "p (bf16 + channels_last)")]
    assert bf16["measured"] == pytest.approx(0.3 / 0.11, abs=1e-3) and bf16["met"] == "yes"
    assert found[("HFD + BSD step / Vanilla step", "p (bf16_cl)")]["measured"] == pytest.approx(1.1)
    assert found[("HFD + BSD step / Vanilla step", "p (bf16_cl_compile)")]["measured"] == pytest.approx(1.2)
    assert found[("4 trials per GPU / 1, images/s", "p")]["measured"] == 2.6
    assert found[("4 trials per GPU / 1, images/s", "p")]["met"] == "yes"


def test_the_check_caches_step_times_and_packing_that_the_dry_run_plans_with(tmp_path):
    plan = bench_gpu.Plan()
    pair = bench_gpu.PAIRS[0]
    rows = [_step(pair, "bf16_cl", "vanilla_pair", 0.08), _step(pair, "bf16_cl", "hfd_bsd", 0.1),
            _step(pair, "fp32", "hfd_bsd", 0.09), {**_packing(1, 40.0), "pair": pair},
            {**_packing(4, 100.0), "pair": pair}, {**_packing(8, 0.0), "pair": pair, "status": "skipped"}]
    path = estimate.update_entries(bench_gpu.cache_entries(rows, plan, "NVIDIA H200"), tmp_path / "steps.json")
    cnn, vit = pair.split("+")
    cfg = resolve("paper", overrides={"cnn": cnn, "vit": vit, "device": "cuda", "weights": None})
    assert estimate.estimate_step_seconds(cfg, path) == 0.1
    assert estimate.estimate_step_seconds(cfg.replace(hfd=False), path) == 0.1  # BSD alone: HFD + BSD stands in
    assert estimate.estimate_step_seconds(cfg.replace(amp=False), path) == 0.09  # fp32
    assert estimate.packing_slowdown(cfg, 4, path) == (pytest.approx(1.6), True)
    assert estimate.packing_slowdown(cfg, 2, path) == (2.0, False)  # not measured: no gain assumed
    assert "measured on NVIDIA H200" in estimate.step_source(cfg, path)


def test_compile_time_is_the_warm_up_beyond_ordinary_steps():
    assert bench_gpu.compile_seconds([40.0, 2.0, 0.2], 0.1) == pytest.approx(41.9)
    assert bench_gpu.compile_seconds([0.1], 0.2) == 0.0


def test_tune_throughput_counts_the_epochs_while_every_trial_ran():
    began = 1000.0
    fast = [{"timestamp": 1020 + 5 * i, "time_this_iter_s": 5.0} for i in range(6)]   # epochs end 1020..1045
    slow = [{"timestamp": 1030 + 10 * i, "time_this_iter_s": 10.0} for i in range(3)]  # 1030..1050
    row = bench_gpu.concurrent_throughput([fast, slow], images_per_epoch=100, began=began)
    # window (1030, 1045]: fast has 3 epochs of 5 s, slow 1 of 10 s -> 0.2 + 0.1 epochs/s
    assert row["trial_epochs_per_h"] == pytest.approx(3600 * 0.3)
    assert row["images_per_s"] == pytest.approx(30.0)
    assert row["startup_s"] == pytest.approx(((1020 - 1000 - 5) + (1030 - 1000 - 10)) / 2)
    assert row["overlap"] == "epochs while all trials ran"
    apart = bench_gpu.concurrent_throughput([fast[:2], [{"timestamp": 2000 + i, "time_this_iter_s": 1.0}
                                                        for i in range(2)]], 100, began)
    assert apart["overlap"] == "trials overlapped only partly"


def test_step_case_measures_the_real_training_step_at_a_tiny_size():
    plan = bench_gpu.Plan(**bench_gpu.QUICK)
    row = bench_gpu.measure_step(bench_gpu.step_settings(plan, "mobilenet_v2+mit_b0", "fp32"), "hfd_bsd")
    assert row["step_s"] > 0 and row["peak_mem_mb"] >= 0 and row["first_step_s"] > 0
    assert row["images_per_s"] == pytest.approx(plan.batch / row["step_s"])


# The whole driver on CPU, Ray included (three trials, 2-2.5 min on 2 cores): the rehearsal before a device
# session, run with -m heavy (docs/gpu_check.md); its cases' guards run in the fast tier.
@pytest.mark.slow
@pytest.mark.heavy
def test_quick_run_is_one_worker_and_one_ray_session_for_every_case(repo, tmp_path, ray_tmpdir):
    out, cache = tmp_path / "gpu_check.csv", tmp_path / "steps.json"
    done = run_script(["-m", "cotrain.bench_gpu", "--quick", "--out", str(out), "--cache", str(cache)],
                      cwd=repo, timeout=1800, env={"RAY_TMPDIR": ray_tmpdir})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = list(csv.DictReader(out.open()))
    assert [r["check"] for r in rows] == ["start", "step", "step", "packing", "packing", "packing_tune", "trial"]
    assert all(r["status"] == "ok" for r in rows)
    assert len({r["worker"] for r in rows}) == 1  # Python and torch started once
    sessions = {r["note"].rsplit("Ray session ", 1)[-1] for r in rows if r["check"] in ("packing_tune", "trial")}
    assert len(sessions) == 1  # Ray started once
    packing = {r["trials"]: r for r in rows if r["check"] == "packing"}
    assert set(packing) == {"1", "2"}
    assert all(float(r["images_per_s"]) > 0 and float(r["peak_mem_mb"]) > 0 for r in packing.values())
    assert float(rows[5]["trial_epochs_per_h"]) > 0 and float(rows[5]["startup_s"]) >= 0
    assert 0 <= float(rows[6]["miou_cnn"]) <= 100
    entry = estimate.read_cache(cache)[estimate.cache_key("mobilenet_v2+mit_b0", 64, 2, "cpu", "fp32")]
    assert set(entry["packing_images_per_s"]) == {"1", "2"} and set(entry["step_s"]) == {"vanilla_pair", "hfd_bsd"}
