"""A real multi-node Ray cluster on loopback (Ray's own test harness): a ``--cluster`` smoke sweep of
two rows of Table 4 while one worker node is removed mid-trial.

The head has no CPUs and two worker nodes have 2 logical CPUs each, so trials run only on the
worker nodes (one trial per node: a 1-CPU worker + the 0.01-CPU trial actor). As soon as a trial has
reported an epoch but not its last, the node it runs on is removed: that trial must continue on the
other node from its checkpoint, and the sweep must still end with every cell finished, exit 0.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from analysis.results import FINISHED, load_results

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # before ray is imported: stay on 127.0.0.1
TIMEOUT_S = 300  # about 2 minutes on 2 idle cores
EPOCHS = 3
ROWS = (1, 4)  # Vanilla and HFD + BSD: one trial per worker node at once
# Smoke epochs take a second: on a busy machine a trial's three reports once reached result.json between two
# polls. Each trial pauses at the start of epoch 2, so it is seen mid-run (after epoch 1) every time.
PAUSE = "pause:epoch=2:step=1:seconds=8"


def rows_by_trial(experiment: Path) -> dict[str, list[dict]]:
    """Every trial folder's reports so far (Tune's result.json, one JSON line per report)."""
    out = {}
    for result in experiment.glob("*/result.json"):
        lines = [line for line in result.read_text().splitlines() if line.strip()]
        out[result.parent.name] = [json.loads(line) for line in lines]
    return out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def loopback_cluster(monkeypatch):
    """Head (0 CPUs) + two worker nodes (2 CPUs each), every process on 127.0.0.1, own RAY_TMPDIR."""
    import ray
    from ray.cluster_utils import Cluster

    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False  # should ray have been imported already
    tmpdir = tempfile.mkdtemp(prefix="rc-", dir="/tmp")  # short: Ray's socket paths are length-limited
    monkeypatch.setenv("RAY_TMPDIR", tmpdir)
    monkeypatch.setenv("COTRAIN_FAULT", PAUSE)  # the nodes' workers inherit it from their raylets
    loopback = {"node_ip_address": "127.0.0.1"}
    # The dashboard serves the State API Ray Train's placement-group cleaner needs (docs/cluster.md).
    head = {"num_cpus": 0, "dashboard_host": "127.0.0.1", "dashboard_port": free_port(), **loopback}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        workers = [cluster.add_node(num_cpus=2, include_dashboard=False, **loopback) for _ in range(2)]
        cluster.wait_for_nodes()
        yield cluster, workers, tmpdir
    finally:
        cluster.shutdown()
        shutil.rmtree(tmpdir, ignore_errors=True)


def test_cluster_sweep_survives_losing_a_worker_node(loopback_cluster, tmp_path):
    cluster, workers, tmpdir = loopback_cluster
    storage, name = tmp_path / "results", "cluster"
    # RAY_AUTH_MODE=token against this cluster without authentication once made every trial die at start.
    env = {**os.environ, "RAY_ADDRESS": cluster.address, "RAY_TMPDIR": tmpdir, "PYTHONPATH": str(REPO),
           "RAY_AUTH_MODE": "token"}
    log = tmp_path / "sweep.log"
    start = time.monotonic()
    with log.open("w") as out:  # a file, not a pipe: nobody reads a pipe while we poll
        sweep = subprocess.Popen([sys.executable, "sweeps/components.py", "--cluster", "--preset", "smoke",
                                  "--rows", ",".join(map(str, ROWS)), "--epochs", str(EPOCHS), "--storage",
                                  str(storage), "--name", name, "--quiet"],
                                 cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    lost, victim, removed_at = None, None, None
    try:
        while sweep.poll() is None and time.monotonic() - start < TIMEOUT_S:
            victim = victim or mid_trial(rows_by_trial(storage / name))
            if victim and lost is None:
                lost = next(w for w in workers if w.node_id == victim[1])
                cluster.remove_node(lost)
                removed_at = time.monotonic() - start
            time.sleep(0.2)
    finally:
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()
    took = time.monotonic() - start
    trials = rows_by_trial(storage / name)
    where = {t.split("_")[3]: [(r["epoch"], r["node_id"][:8]) for r in rows] for t, rows in trials.items()}
    print(f"\nsweep {took:.0f} s; node {victim and victim[1][:8]} removed at {removed_at and round(removed_at)} s "
          f"during trial {victim and victim[0].split('_')[3]}; (epoch, node) per trial: {where}")

    assert sweep.returncode == 0, log.read_text()[-4000:]
    assert victim is not None, f"no trial was caught mid-run: {where}"
    assert len(trials) == len(ROWS) and all(rows[-1]["epoch"] == EPOCHS for rows in trials.values()), where
    assert len({r["node_id"] for rows in trials.values() for r in rows}) > 1, where
    # The lost node's trial moved to another node and continued from its checkpoint.
    moved = trials[victim[0]]
    assert moved[-1]["node_id"] != lost.node_id, where
    # No epoch is trained twice: epochs never go back. (A trial whose trial actor sat on the lost node
    # after its last epoch is restarted, finds its final checkpoint and only reports that epoch again.)
    for rows in trials.values():
        epochs = [r["epoch"] for r in rows]
        assert epochs == sorted(epochs) and set(epochs) == set(range(1, EPOCHS + 1)), where
    # The table script counts the restarted trial as finished (Ray left an error.txt for its lost attempt).
    statuses = load_results(storage).trials["status"]
    assert set(statuses) == {FINISHED} and len(statuses) == len(ROWS), statuses


def mid_trial(trials: dict[str, list[dict]]) -> tuple[str, str] | None:
    """(trial, node id) of a trial that has reported an epoch but not its last, if any."""
    for trial, rows in trials.items():
        if rows and rows[-1]["epoch"] < EPOCHS:
            return trial, rows[-1]["node_id"]
    return None
