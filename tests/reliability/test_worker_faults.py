"""Faults inside a sweep run through real Ray (Tune trial -> TorchTrainer worker), injected with COTRAIN_FAULT.

One tiny sweep serves three checks (Ray costs ~30 s a trial here, so CI stays fast):
  * ``log_every=2``: the worker is SIGKILLed at epoch 2 step 1, once; Ray Train restarts it from the
    epoch-1 checkpoint and it must end with exactly the metrics of the uninterrupted cell
    (``log_every`` only sets how often finiteness is checked: same seed, same math).
  * ``alpha=2.0``: bsd_p_cnn becomes NaN at epoch 1 step 1; the trial errors naming term and step.
  * the uninterrupted cell finishes, and make_tables shows the NaN cell as ``failed``.
"""
from __future__ import annotations

import subprocess
import sys

import pytest
from reliability_helpers import REPO, cell_of, env, reports, trial_dirs, write_sweep

pytestmark = pytest.mark.slow

BASELINE = {"method": "ours", "alpha": 1.0}
KILLED = {"method": "ours", "alpha": 1.0, "log_every": 2}
NAN = {"method": "ours", "alpha": 2.0}


@pytest.fixture(scope="module")
def faulty_sweep(tmp_path_factory):
    """Run the sweep once; returns (storage, {"baseline"|"killed"|"nan": trial folder}, marker, driver output)."""
    tmp = tmp_path_factory.mktemp("faults")
    marker = tmp / "killed-once"
    fault = (f"kill:epoch=2:step=1:once={marker}:when=log_every=2;"
             "nan:bsd_p_cnn:epoch=1:step=1:when=alpha=2.0")
    script = write_sweep(tmp, [BASELINE, KILLED, NAN])
    done = subprocess.run([sys.executable, str(script), "--preset", "smoke", "--storage", str(tmp / "results"),
                           "--name", "faults", "--quiet"], cwd=REPO, env=env(COTRAIN_FAULT=fault),
                          capture_output=True, text=True, timeout=400)
    trials = {}
    for folder in trial_dirs(tmp / "results" / "faults"):
        cell = cell_of(folder)
        key = "nan" if cell["alpha"] == 2.0 else "killed" if cell["log_every"] == 2 else "baseline"
        trials[key] = folder
    assert set(trials) == {"baseline", "killed", "nan"}, done.stdout[-3000:] + done.stderr[-3000:]
    return tmp / "results", trials, marker, done


def test_killed_worker_resumes_to_the_uninterrupted_metrics(faulty_sweep):
    _, trials, marker, done = faulty_sweep
    assert marker.exists(), "the kill fault never fired (COTRAIN_FAULT did not reach the Ray worker?)"
    killed, baseline = reports(trials["killed"]), reports(trials["baseline"])
    assert not (trials["killed"] / "error.txt").exists(), done.stdout[-3000:]
    assert [r["epoch"] for r in killed] == [1, 2] and [r["epoch"] for r in baseline] == [1, 2]
    # CPU kernels are deterministic and the epoch is replayed from its seed: exact equality.
    for key in ("miou_cnn", "miou_vit", "loss_cnn", "loss_vit"):
        assert killed[-1][key] == baseline[-1][key], key


def test_nan_loss_fails_only_its_trial_naming_term_and_step(faulty_sweep):
    _, trials, _, done = faulty_sweep
    error = trials["nan"] / "error.txt"
    assert error.exists(), done.stdout[-3000:]
    assert "loss term 'bsd_p_cnn' became non-finite by epoch 1 step 1" in error.read_text()
    assert not (trials["baseline"] / "error.txt").exists()
    assert done.returncode == 1  # the sweep reports a failed trial
    assert "FAILED" in done.stdout


def test_make_tables_shows_the_nan_cell_as_failed(faulty_sweep):
    results, _, _, _ = faulty_sweep
    done = subprocess.run([sys.executable, "analysis/make_tables.py", "--results", str(results), "--no-plots"],
                          cwd=REPO, env=env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("|")]
    alpha_2 = [line for line in rows if line.split("|")[1].strip() == "2"]  # undeclared rows: labelled by key
    assert alpha_2 and all("failed" in line for line in alpha_2), done.stdout
