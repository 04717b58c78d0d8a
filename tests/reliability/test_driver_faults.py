"""The sweep driver dies (SIGKILL) or is interrupted (SIGINT): resuming keeps finished trials, and no
Ray process of the session outlives the driver; while it runs, Ray listens on loopback only."""
from __future__ import annotations

import os
import signal

import pytest

from reliability_helpers import (alive, cell_of, descendants, launch, reports, trial_dirs, wait_for,
                                 write_sweep)

pytestmark = pytest.mark.slow
LOOPBACK = ("127.0.0.1", "::1")


def _finished(trial, epochs: int = 2) -> bool:
    runs = reports(trial)
    return bool(runs) and runs[-1].get("epoch") == epochs


def _listening(pids: set[int]) -> list[tuple[int, str, int]]:
    """(pid, ip, port) of every LISTEN socket the given processes hold."""
    import psutil
    return [(c.pid, c.laddr.ip, c.laddr.port) for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids]


def test_sigkilled_sweep_resumes_keeping_finished_trials(tmp_path):
    # One trial at a time (each worker asks for 1.9 CPUs), so one finishes while the other is still running.
    script = write_sweep(tmp_path, [{"method": "vanilla"}, {"method": "ours", "alpha": 1.0}])
    storage, experiment = tmp_path / "results", tmp_path / "results" / "x"
    flags = ["--preset", "smoke", "--storage", str(storage), "--name", "x", "--cpus-per-trial", "1.9", "--quiet"]
    driver = launch([str(script), *flags], tmp_path / "first.log")
    ray_pids: set[int] = set()

    def one_finished_other_started():
        ray_pids.update(p.pid for p in descendants(driver.pid))
        trials = trial_dirs(experiment)
        done = [t for t in trials if _finished(t)]
        return done if done and any(reports(t) for t in trials if t not in done) else None

    finished = wait_for(one_finished_other_started, 240, driver, "one finished trial and one started")
    kept = {t: ((t / "result.json").read_bytes(), (t / "result.json").stat().st_mtime_ns) for t in finished}
    driver.send_signal(signal.SIGKILL)
    driver.wait(10)
    # Ray's processes share the driver's fate (they get SIGKILL when it dies), even after a SIGKILL.
    wait_for(lambda: not alive(sorted(ray_pids)), 30, what=f"Ray processes {alive(sorted(ray_pids))} to exit")

    again = launch([str(script), *flags, "--resume"], tmp_path / "resume.log")
    assert again.wait(300) == 0, (tmp_path / "resume.log").read_text()[-3000:]
    trials = trial_dirs(experiment)
    assert len(trials) == 2 and all(_finished(t) for t in trials)
    assert not any((t / "error.txt").exists() for t in trials)
    for trial, (content, mtime) in kept.items():  # finished trials were not re-run
        assert (trial / "result.json").read_bytes() == content
        assert (trial / "result.json").stat().st_mtime_ns == mtime
    assert sorted(cell_of(t)["method"] for t in trials) == ["ours", "vanilla"]


def test_interrupted_run_listens_on_loopback_and_leaves_no_ray_process(tmp_path):
    driver = launch(["-m", "cotrain.train", "--preset", "smoke", "--out", str(tmp_path), "--name", "s"],
                    tmp_path / "run.log")
    ray_pids: set[int] = set()
    sockets: set[tuple[int, str, int]] = set()

    def worker_training():
        procs = descendants(driver.pid)
        ray_pids.update(p.pid for p in procs)
        sockets.update(_listening(ray_pids | {driver.pid}))
        log = (tmp_path / "run.log").read_text()
        return "epoch 1/2 step 1/2" in log

    wait_for(worker_training, 180, driver, "the Train worker's first step")
    sockets.update(_listening(ray_pids | {driver.pid}))
    assert sockets, "no listening socket seen (is psutil allowed to read them?)"
    assert all(ip in LOOPBACK for _, ip, _ in sockets), sorted(sockets)
    driver.send_signal(signal.SIGINT)
    driver.wait(90)
    wait_for(lambda: not alive(sorted(ray_pids)), 30, what=f"Ray processes {alive(sorted(ray_pids))} to exit")
    assert os.path.isdir(tmp_path / "s")  # the run's folder stays, ready for --resume
