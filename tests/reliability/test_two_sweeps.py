"""Two sweeps with different names started at once in one ``--storage`` (issue #25), with ``--mlflow``'s local
store: each keeps to its own folder, both finish, both reach MLflow and make_tables renders both.

Before, both created ``<storage>/mlflow.db`` at the same moment and one died in MLflow's schema migration
(alembic ``CommandError``, a traceback, exit 1); the store is now created under a lock.
"""
from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from reliability_helpers import REPO, launch, trial_dirs, write_sweep

pytestmark = pytest.mark.slow


def test_two_sweeps_at_once_in_one_storage(tmp_path):
    pytest.importorskip("mlflow")
    script = write_sweep(tmp_path, [{"method": "vanilla"}])
    storage = tmp_path / "shared"
    procs = [launch([str(script), "--preset", "smoke", "--storage", str(storage), "--name", name, "--quiet",
                     "--set", "max_val_images=1", "--mlflow"], tmp_path / f"{name}.log", cwd=tmp_path)
             for name in ("sweep_a", "sweep_b")]
    for proc in procs:
        proc.wait(timeout=1800)
    for proc in procs:
        assert proc.returncode == 0, proc.log_path.read_text()[-3000:]
    for name in ("sweep_a", "sweep_b"):
        (trial,) = trial_dirs(storage / name)
        assert (trial / "result.json").read_text().count("\n") == 2  # two epochs, its own trial only
    with sqlite3.connect(storage / "mlflow.db") as db:
        names = {row[0] for row in db.execute("select name from experiments")}
    assert {"sweep_a", "sweep_b"} <= names
    tables = subprocess.run([sys.executable, "analysis/make_tables.py", "--results", str(storage), "--no-plots"],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert tables.returncode == 0, tables.stderr
    assert "table7_sweep_a <- " in tables.stdout and "table7_sweep_b <- " in tables.stdout
