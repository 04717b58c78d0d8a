"""Same-machine determinism and portable numerics (issue #23), every metric compared exactly.

One tiny config (smoke preset, seed 0, 2 epochs of 1 step, one CPU thread) through ``--direct`` twice
and as two sweeps at once, each running one of two identical trials (two runs through Ray at once, pinned,
which also check that two sweeps share one storage and MLflow store; one unpinned run through Ray,
interrupted and resumed, is tests/reliability/test_driver_faults.py);
pinned (``--portable``) runs equal each other and differ from unpinned ones on a machine whose own
kernels are not AVX2.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cotrain.provenance import KEY, parse
from tests.conftest import REPO, TINY_RUN, numbers, run_main, run_script

TWINS = textwrap.dedent('''
    import sys

    from cotrain.sweep import SweepSpec, run_sweep
    from cotrain.tables import TableSpec

    # Two trials of one config (log_every changes only how often the loop prints), run at once.
    TABLE = TableSpec("twins", "Two identical trials", varies=("log_every",), label_columns=("log every",))
    SPEC = SweepSpec.from_rows(script="twins", table=TABLE, rows=[({"log_every": 1}, ("1",)),
                                                                  ({"log_every": 2}, ("2",))])

    if __name__ == "__main__":
        sys.exit(run_sweep(SPEC))
''')


def direct(tmp: Path, name: str, monkeypatch, *extra: str) -> tuple[list[dict], list[dict]]:
    """A ``--direct`` run in this process (a ``--portable`` one restarts in a pinned child): its epoch
    metrics and the provenance of each start."""
    code = run_main(["-m", "cotrain.train", *TINY_RUN, *extra, "--out", str(tmp), "--name", name, "--direct"],
                    monkeypatch)
    assert code == 0
    lines = (tmp / name / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines], json.loads((tmp / name / "provenance.json").read_text())


def ray_reports(trial_dir: Path) -> tuple[list[dict], list[dict]]:
    reports = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
    return reports, [parse(r[KEY]) for r in reports if KEY in r]


@pytest.fixture(scope="module")
def direct_runs(tmp_path_factory):
    """Two unpinned and two pinned ``--direct`` runs of ``TINY_RUN``."""
    tmp = tmp_path_factory.mktemp("direct")
    with pytest.MonkeyPatch.context() as monkeypatch:
        return {name: direct(tmp, name, monkeypatch, *(["--portable"] if name.startswith("pinned") else []))
                for name in ("plain1", "plain2", "pinned1", "pinned2")}


@pytest.mark.slow
def test_direct_runs_repeat_exactly(direct_runs):
    plain = direct_runs["plain1"][0]
    assert numbers(plain, plain) == numbers(direct_runs["plain2"][0], plain) and len(plain) == 2


@pytest.mark.slow
def test_portable_runs_repeat_exactly_and_differ_from_unpinned_ones(direct_runs):
    (pinned, [start]), (again, _) = direct_runs["pinned1"], direct_runs["pinned2"]
    assert numbers(pinned, pinned) == numbers(again, pinned)
    assert start["cpu_capability"] == "AVX2" and start["torch_threads"] == 1
    assert start["pinned_env"]["ATEN_CPU_CAPABILITY"] == "avx2"
    plain, [plain_start] = direct_runs["plain1"]
    if plain_start["cpu_capability"] == "AVX2":
        pytest.skip("this machine's own kernels are AVX2: pinned and unpinned runs are the same kernels")
    assert numbers(pinned, pinned) != numbers(plain, pinned)


@pytest.mark.slow
def test_two_sweeps_of_twins_at_once_in_one_storage_equal_the_portable_direct_run(direct_runs, tmp_path, ray_tmpdir):
    """Two sweeps (each its own Ray) started at once in one ``--storage`` with ``--mlflow``: ``twins_a`` runs
    one pinned trial, ``twins_b`` its twin (``--rows 2``: another log_every), at the same time. Both end with
    the pinned direct run's numbers, each sweep keeps to its own folder, both reach MLflow and make_tables
    renders both (issue #25: the two once raced to create ``<storage>/mlflow.db``; one died in MLflow's
    schema migration)."""
    pytest.importorskip("mlflow")
    script, storage = tmp_path / "twins.py", tmp_path / "runs"
    script.write_text(TWINS)
    sweep = ["--preset", "smoke", "--epochs", "2", "--set", "max_train_steps=1", "--set", "cpu_threads=1",
             "--portable", "--storage", str(storage), "--quiet", "--mlflow"]
    env = {**os.environ, "RAY_TMPDIR": ray_tmpdir, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    rows = {"twins_a": "1", "twins_b": "2"}
    procs = {}
    for name in rows:
        with (tmp_path / f"{name}.log").open("w") as log:  # a file, not a pipe: a full pipe would block the sweep
            procs[name] = subprocess.Popen([sys.executable, str(script), *sweep, "--rows", rows[name], "--name", name],
                                           cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    for name, proc in procs.items():
        assert proc.wait(timeout=900) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
    pinned, spans = direct_runs["pinned1"][0], []
    for name in procs:
        [(reports, [start])] = [ray_reports(p.parent) for p in sorted((storage / name).glob("*/result.json"))]
        assert numbers(reports, pinned) == numbers(pinned, pinned), name  # its own trial only, the direct numbers
        assert start["cpu_capability"] == "AVX2" and start["pinned_env"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
        spans.append((reports[-1]["timestamp"] - reports[-1]["time_total_s"], reports[-1]["timestamp"]))
    assert max(s for s, _ in spans) < min(e for _, e in spans), f"the twins did not run at once: {spans}"
    with sqlite3.connect(storage / "mlflow.db") as db:
        assert {"twins_a", "twins_b"} <= {row[0] for row in db.execute("select name from experiments")}
    tables = run_script([str(REPO / "analysis" / "make_tables.py"), "--results", str(storage), "--no-plots"],
                        cwd=REPO)
    assert tables.returncode == 0, tables.stderr
    assert "_twins_a <- " in tables.stdout and "_twins_b <- " in tables.stdout, tables.stdout
