"""The sweep driver dies (SIGKILL) or is interrupted (SIGINT): resuming keeps finished trials, and no
Ray process of the session outlives the driver; while it runs, Ray listens on loopback only. A run
interrupted and resumed through Ray ends with the numbers of the same run made directly."""
from __future__ import annotations

import ipaddress
import json
import signal
import sys
from pathlib import Path

import pytest
import torch
import yaml
from reliability_helpers import (
    alive,
    cell_of,
    descendants,
    launch,
    listening,
    reports,
    trial_dirs,
    wait_for,
    write_sweep,
)

from cotrain.config import TrainConfig
from cotrain.engine.loop import fit
from cotrain.provenance import KEY, parse
from tests.conftest import TINY_RUN, numbers, run_main

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:80]
    except OSError:
        return "?"


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    return addr.is_loopback or bool(getattr(addr, "ipv4_mapped", None) and addr.ipv4_mapped.is_loopback)


def _finished(trial, epochs: int = 2) -> bool:
    runs = reports(trial)
    return bool(runs) and runs[-1].get("epoch") == epochs


def _terminated(experiment: Path) -> set[str]:
    """Ids of the trials Tune's saved experiment state has as ended (what a resume will not re-run)."""
    states = sorted(experiment.glob("experiment_state-*.json"))
    try:
        trials = [json.loads(entry[0]) for entry in json.loads(states[-1].read_text())["trial_data"]]
    except (IndexError, OSError, ValueError):  # not written yet, or being replaced
        return set()
    return {t["trial_id"] for t in trials if t.get("status") == "TERMINATED"}


def test_sigkilled_sweep_resumes_keeping_finished_trials(tmp_path):
    # Two trials at once; Ours is held at epoch 2 (a pause fault, once), so Vanilla finishes (and Tune has
    # saved it as ended) while Ours has reported epoch 1 and is still running when the driver is killed.
    script = write_sweep(tmp_path, [{"method": "vanilla"}, {"method": "ours", "alpha": 1.0}])
    storage, experiment = tmp_path / "results", tmp_path / "results" / "x"
    flags = ["--preset", "smoke", "--storage", str(storage), "--name", "x", "--quiet"]
    hold = f"pause:epoch=2:step=1:seconds=300:once={tmp_path / 'held'}:when=method=ours"
    driver = launch([str(script), *flags], tmp_path / "first.log", COTRAIN_FAULT=hold)
    ray_pids: set[int] = set()

    def one_finished_other_started():
        ray_pids.update(descendants(driver.pid))
        trials, ended = trial_dirs(experiment), _terminated(experiment)
        done = [t for t in trials if _finished(t) and any(trial_id in t.name for trial_id in ended)]
        return done if done and any(reports(t) for t in trials if t not in done) else None

    finished = wait_for(one_finished_other_started, 480, driver, "one finished trial and one started")
    kept = {t: ((t / "result.json").read_bytes(), (t / "result.json").stat().st_mtime_ns) for t in finished}
    driver.send_signal(signal.SIGKILL)
    driver.wait(10)
    again = launch([str(script), *flags, "--resume"], tmp_path / "resume.log")
    assert again.wait(300) == 0, (tmp_path / "resume.log").read_text()[-3000:]
    # Ray's processes share the driver's fate, even after a SIGKILL: its direct children at once
    # (PR_SET_PDEATHSIG); its workers notice their raylet is gone within seconds to a minute on a busy
    # machine (checked after the resume, which does not wait for them).
    wait_for(lambda: not alive(sorted(ray_pids)), 120, what=f"Ray processes {alive(sorted(ray_pids))} to exit")
    trials = trial_dirs(experiment)
    assert len(trials) == 2 and all(_finished(t) for t in trials)
    assert not any((t / "error.txt").exists() for t in trials)
    for trial, (content, mtime) in kept.items():  # finished trials were not re-run
        assert (trial / "result.json").read_bytes() == content
        assert (trial / "result.json").stat().st_mtime_ns == mtime
    assert sorted(cell_of(t)["method"] for t in trials) == ["ours", "vanilla"]


def test_interrupted_run_listens_on_loopback_leaves_no_ray_process_and_resumes_to_the_direct_numbers(
        tmp_path, monkeypatch, ray_tmpdir):
    """One single run through Ray (Tune trial -> TorchTrainer) serves the driver's Ctrl-C, the resume, a
    stale cluster address, and determinism: held at its first step (a pause fault), interrupted, resumed,
    it ends with every number of the same config run directly in this process."""
    marker = tmp_path / "paused"
    # Beside what a crashed `ray start` leaves (the address of a cluster that is gone), in a Ray temp dir of its own.
    stale = Path(ray_tmpdir, "ray", "ray_current_cluster")
    stale.parent.mkdir(parents=True)
    stale.write_text("127.0.0.1:9\n")
    driver = launch(["-m", "cotrain.train", *TINY_RUN, "--out", str(tmp_path), "--name", "s"], tmp_path / "run.log",
                    COTRAIN_FAULT=f"pause:epoch=1:step=1:seconds=300:once={marker}", RAY_TMPDIR=ray_tmpdir)
    ray_pids: set[int] = set()
    sockets: set[tuple[int, str, int]] = set()

    def worker_paused():
        ray_pids.update(descendants(driver.pid))
        sockets.update(listening(ray_pids | {driver.pid}))
        return marker.exists()

    wait_for(worker_paused, 360, driver, "the Train worker's first step")
    ray_pids.update(descendants(driver.pid))
    sockets.update(listening(ray_pids | {driver.pid}))
    assert sockets, "no listening socket seen (is /proc readable?)"
    exposed = sorted((pid, ip, port, _name(pid)) for pid, ip, port in sockets if not _loopback(ip))
    # Known exception: torch.distributed's TCPStore (the rendezvous TorchTrainer sets up in its worker)
    # binds the wildcard address and torch has no option to narrow it. Ray itself must stay on loopback.
    assert not [e for e in exposed if "RayTrainWorker" not in e[3]], exposed
    assert len(exposed) <= 1, exposed
    driver.send_signal(signal.SIGINT)
    driver.wait(90)
    wait_for(lambda: not alive(sorted(ray_pids)), 30, what=f"Ray processes {alive(sorted(ray_pids))} to exit")
    # Tune catches Ctrl-C and returns: the run must still end as interrupted, saying how to resume.
    log = (tmp_path / "run.log").read_text()
    assert driver.returncode == 130, log[-3000:]
    assert "interrupted; resume with the same command plus --resume --name s" in log
    assert "mIoU: nan" not in log

    resumed = launch(["-m", "cotrain.train", *TINY_RUN, "--out", str(tmp_path), "--name", "s", "--resume"],
                     tmp_path / "resume.log", RAY_TMPDIR=ray_tmpdir)
    assert resumed.wait(300) == 0, (tmp_path / "resume.log").read_text()[-3000:]
    assert "CNN (mobilenet_v2) mIoU:" in (tmp_path / "resume.log").read_text()
    experiment = tmp_path / "s"
    cfg = TrainConfig.from_dict(yaml.safe_load((experiment / "config.yaml").read_text()))
    assert cfg.preset == "smoke" and cfg.name == "s" and cfg.epochs == 2
    [trial] = trial_dirs(experiment)
    ray_run = reports(trial)
    assert [r["epoch"] for r in ray_run] == [1, 2] and {"miou_cnn", "miou_vit", "iou_cnn"} <= set(ray_run[-1])
    [start] = [parse(r[KEY]) for r in ray_run if KEY in r]  # recorded once per start, with its first report
    assert start["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and start["torch_threads"] == 1
    assert not start["pinned_env"]  # an unpinned run in a clean environment (a leaked pin once made it AVX2)

    assert run_main(["-m", "cotrain.train", *TINY_RUN, "--out", str(tmp_path), "--name", "d", "--direct"],
                    monkeypatch) == 0
    direct = [json.loads(line) for line in (tmp_path / "d" / "metrics.jsonl").read_text().splitlines()]
    assert numbers(ray_run, direct) == numbers(direct, direct)

    # Ray Train's checkpoint continues outside Ray too.
    checkpoints = sorted(experiment.glob("_train/train-*/checkpoint_*/checkpoint.pt"))
    last = max(checkpoints, key=lambda p: torch.load(p, map_location="cpu", weights_only=True)["epoch"])
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 2
    reported: list[int] = []
    fit(cfg.replace(epochs=3), lambda metrics, folder: reported.append(metrics["epoch"]),
        resume_from=str(last.parent), log=lambda _: None)
    assert reported == [3]
