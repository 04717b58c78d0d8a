"""Which Ray a run joins: embedded Ray ignores address files; ``--cluster`` matches the cluster's token
authentication; a trial that fits no node stops the run at once with exit code 2."""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CONNECT = ("import ray; from cotrain.launch import ray_session\n"
           "with ray_session(cluster=True):\n"
           "    print('CPUs', ray.get(ray.remote(num_cpus=0.5)(lambda: ray.cluster_resources()['CPU']).remote()))")


@pytest.fixture
def ray_env(tmp_path):
    """A clean environment with its own short RAY_TMPDIR and HOME (no ~/.ray/auth_token)."""
    tmpdir = tempfile.mkdtemp(prefix="rc-", dir="/tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH") and k != "RAY_ADDRESS"}
    # RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: Ray keeps every process of a run (drivers too) on 127.0.0.1.
    env.update(RAY_TMPDIR=tmpdir, HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO),
               RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               COTRAIN_DATA_HOME=os.environ.get("COTRAIN_DATA_HOME", str(Path.home() / ".cache" / "cotrain")))
    yield env
    shutil.rmtree(tmpdir, ignore_errors=True)


def run(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


# A run beside a stale address file (what a crashed `ray start` leaves): the interrupted and resumed run of
# tests/reliability/test_driver_faults.py starts beside one.


@pytest.mark.parametrize("args", [
    ["sweeps/components.py", "--preset", "smoke", "--cpus-per-trial", "64", "--name", "big"],
    ["-m", "cotrain.train", "--preset", "smoke", "--cpus-per-worker", "64", "--name", "big"],
])
def test_a_trial_no_node_can_place_exits_2_naming_request_and_largest_node(args, ray_env, tmp_path):
    out = tmp_path / "out"
    done = run([*args, "--storage" if args[0].startswith("sweeps") else "--out", str(out)], ray_env)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "one trial needs 1 worker(s) x (64 CPU) + 0.01 CPU for the trial actor" in lines[-1]
    assert f"largest node: {os.cpu_count()} CPU, 0 GPU" in lines[-1]
    assert not (out / "big").exists()  # nothing half-written


@contextmanager
def loopback_head(env: dict, tmp_path: Path) -> Iterator[str]:
    """A one-node cluster on 127.0.0.1 in its own process with ``env``; yields its address."""
    address_file = tmp_path / "address"
    head = subprocess.Popen([sys.executable, str(Path(__file__).with_name("loopback_head.py")), str(address_file)],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not address_file.exists() and head.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert address_file.exists(), "the loopback head did not start"
        yield address_file.read_text()
    finally:
        head.stdin.close()  # the head shuts its cluster down
        head.wait(timeout=60)


def test_cluster_with_token_auth_needs_the_token_and_says_so(ray_env, tmp_path):
    token = secrets.token_hex(16)
    with loopback_head({**ray_env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}, tmp_path) as address:
        env = {**ray_env, "RAY_ADDRESS": address}
        refused = run(["-c", f"from cotrain.cli import guarded\ndef main():\n    exec({CONNECT!r})\n    return 0\n"
                             "raise SystemExit(guarded(main))"], env, timeout=90)
        wrong = run(["-c", CONNECT], {**env, "RAY_AUTH_TOKEN": secrets.token_hex(16)}, timeout=90)
        connected = run(["-c", CONNECT], {**env, "RAY_AUTH_TOKEN": token}, timeout=90)
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
    assert "requires token authentication and no token was found" in refused.stderr.strip().splitlines()[-1]
    assert "refused this machine's token" in wrong.stderr
    assert connected.returncode == 0 and "CPUs 1.0" in connected.stdout, connected.stderr[-2000:]


def test_cluster_without_token_auth_connects_even_with_token_mode_set(ray_env, tmp_path):
    with loopback_head(ray_env, tmp_path) as address:
        env = {**ray_env, "RAY_ADDRESS": address, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
        done = run(["-c", CONNECT], env, timeout=90)  # a task (a worker process) runs: nothing dies
    assert done.returncode == 0 and "CPUs 1.0" in done.stdout, done.stderr[-2000:]
    assert "has no token authentication" in done.stderr

UNPLACEABLE = """
import sys
from cotrain import launch
from cotrain.config import resolve
from cotrain.launch import experiment
experiment.trials_at_once = lambda resources: 1  # skip the up-front check: the bound on the wait is under test
resources = launch.Resources(cpus_per_worker=4.0, placement_timeout_s=5, trial_retries=0)
with launch.ray_session(num_cpus=2, quiet=True):
    grid = launch.run_experiment(resolve("smoke").to_dict(), name="unplaceable", storage=sys.argv[1],
                                 resources=resources, verbose=0)
print("TRIAL ERROR:", grid[0].error)
"""


def test_workers_that_cannot_be_placed_fail_the_trial_instead_of_waiting_forever(ray_env, tmp_path):
    done = run(["-c", UNPLACEABLE, str(tmp_path)], ray_env, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    error = done.stdout.split("TRIAL ERROR:", 1)[1]
    assert "worker group startup timed out after 5.0 seconds" in error  # one try: no retry loop
