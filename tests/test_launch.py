"""Ray glue: trial resources, cell flattening and the embedded Ray session."""
from __future__ import annotations

import os
import queue
import threading
import time

import pytest

from cotrain.launch import Resources, experiment_exists, flatten_cell, local_cpu_share, resume_stage, trial

TWO_CPU_NODES = [{"CPU": 0.0}, {"CPU": 2.0}, {"CPU": 2.0}]  # a head without CPUs and two workers


@pytest.mark.parametrize("resources,nodes,expected", [
    (Resources(cpus_per_worker=0.975), [{"CPU": 2.0}], 2),
    (Resources(cpus_per_worker=1.0), [{"CPU": 2.0}], 1),  # 2 x (1 + 0.01) > 2
    (Resources(cpus_per_worker=1.95), [{"CPU": 2.0}], 1),
    (Resources(workers=2, cpus_per_worker=1.0), [{"CPU": 8.0}], 3),
    (Resources(cpus_per_worker=1.0, gpus_per_worker=0.5), [{"CPU": 16.0, "GPU": 1.0}], 2),
    (Resources(cpus_per_worker=1.0), TWO_CPU_NODES, 2),
    (Resources(workers=2, cpus_per_worker=1.0, gpus_per_worker=1.0), [{"CPU": 8, "GPU": 1}] * 2, 1),  # across nodes
    (Resources(cpus_per_worker=1.0), [{"CPU": 0.0}, {"CPU": 1.0}, {"CPU": 1.0}], 1),  # actor, worker apart
    (Resources(cpus_per_worker=1.0), [{"CPU": 0.0}, {"CPU": 1.0}], 0),  # the hang: 1.01 on a 1-CPU node
    (Resources(cpus_per_worker=4.0), [{"CPU": 2.0}], 0),
    (Resources(cpus_per_worker=1.0, gpus_per_worker=1.0), [{"CPU": 64.0}], 0),
    (Resources(cpus_per_worker=1.0), [], 0),
])
def test_trials_that_fit_places_actor_and_workers_on_nodes(resources, nodes, expected):
    assert resources.trials_that_fit(nodes) == expected


def test_impossible_trial_names_the_request_and_the_largest_node(monkeypatch):
    from cotrain.errors import ClusterError
    from cotrain.launch import resources  # where trials_at_once looks node_resources up
    monkeypatch.setattr(resources, "node_resources", lambda: [{"CPU": 0.0, "GPU": 0.0}, {"CPU": 1.0, "GPU": 0.0}])
    with pytest.raises(ClusterError) as exc:
        resources.trials_at_once(Resources(cpus_per_worker=1.0))
    message = str(exc.value)
    assert "1 worker(s) x (1 CPU) + 0.01 CPU for the trial actor" in message
    assert "largest node: 1 CPU, 0 GPU" in message and "\n" not in message
    monkeypatch.setattr(resources, "node_resources", lambda: TWO_CPU_NODES)
    assert resources.trials_at_once(Resources(cpus_per_worker=1.0)) == 2


def test_a_trial_this_machine_cannot_place_fails_before_the_embedded_ray_starts(monkeypatch):
    from cotrain.errors import ClusterError
    from cotrain.launch import ray_session, session

    def no_start(*args, **kwargs):
        raise AssertionError("the embedded Ray was started")
    monkeypatch.setattr(session, "_start_local_ray", no_start)
    with pytest.raises(ClusterError, match=r"largest node: 2 CPU, 0 GPU"):
        with ray_session(num_cpus=2, resources=Resources(cpus_per_worker=3.0)):
            pass
    with pytest.raises(AssertionError, match="was started"):  # a trial that fits, or asks for GPUs: Ray starts
        with ray_session(num_cpus=2, resources=Resources(cpus_per_worker=3.0, gpus_per_worker=1.0)):
            pass


def test_local_cpu_share_leaves_room_for_the_trial_actors():
    assert local_cpu_share(2, total=2) == pytest.approx(0.975)
    assert 2 * local_cpu_share(2, total=2) + 2 * 0.01 <= 2
    assert local_cpu_share(8, total=2) == 0.5


def test_flatten_cell_merges_the_cell_over_the_shared_config():
    config = {"alpha": 1.0, "seed": 0, "cell": {"method": "ours", "alpha": 0.5}}
    assert flatten_cell(config) == {"alpha": 0.5, "seed": 0, "method": "ours"}
    assert "cell" in config  # the caller's dict is left alone


@pytest.mark.slow
def test_a_stage_resumes_only_if_it_had_started_under_a_uri_as_in_a_folder(tmp_path):
    # A staged sweep on s3:// once never resumed its later stages (their Tune state was not looked for);
    # file:// goes through the same pyarrow lookup as s3://.
    uri = f"file://{tmp_path}"
    for storage in (str(tmp_path), uri):
        assert not experiment_exists(storage, "x") and not resume_stage(True, storage, "x")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "tuner.pkl").write_bytes(b"state")
    for storage in (str(tmp_path), uri):
        assert experiment_exists(storage, "x") and resume_stage(True, storage, "x")
        assert not resume_stage(False, storage, "x")


def test_embedded_ray_runs_workers_at_normal_priority():
    ray = pytest.importorskip("ray")
    from cotrain.launch import ray_session

    with ray_session(num_cpus=1, quiet=True):
        niceness = ray.get(ray.remote(num_cpus=1)(lambda: os.nice(0)).remote())
    assert niceness == 0  # Ray's default would be 15


TWO_AT_ONCE = """
import sys, time
from pathlib import Path
import ray
from cotrain.launch import ray_session

here, other = Path(sys.argv[1]), Path(sys.argv[2])

def wait_for(path):
    deadline = time.time() + 180
    while not path.exists():
        if time.time() > deadline:
            sys.exit(f"gave up waiting for {path}")
        time.sleep(0.5)

@ray.remote(num_cpus=0)
def ask_state_api():  # what Ray Train's placement-group cleaner does inside the cluster
    from ray.util.state import list_nodes
    return len(list_nodes())

with ray_session(num_cpus=1, quiet=True):
    (here.parent / (here.name + ".up")).touch()
    wait_for(other.parent / (other.name + ".up"))  # both Ray instances are alive from here on
    print("nodes", ray.get(ask_state_api.remote()), flush=True)
    here.touch()
    wait_for(other)
"""


@pytest.mark.slow
def test_two_local_runs_at_once_each_reach_their_own_state_api(tmp_path):
    # Regression (seen on a GPU machine): with two local Rays, the State API inside the
    # cluster found both and failed with "Found multiple active Ray instances".
    import subprocess
    import sys
    script = tmp_path / "one.py"
    script.write_text(TWO_AT_ONCE)
    a, b = tmp_path / "a", tmp_path / "b"
    runs = [subprocess.Popen([sys.executable, str(script), str(x), str(y)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for x, y in ((a, b), (b, a))]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (out, err) in zip(runs, outputs):
        assert run.returncode == 0 and "nodes 1" in out, out[-2000:] + err[-3000:]


class _TrialSession:
    """The two queues of a Tune trial actor's session; a thread plays its main thread, taking reports late."""

    def __init__(self, reports: int, delay_s: float) -> None:
        self._inter_actor_queue = queue.Queue()
        self.result_queue = queue.Queue(1)
        self.iteration = 0
        for number in range(reports):
            self._inter_actor_queue.put({"epoch": number + 1})
        self.taken_at: list[float] = []
        threading.Thread(target=self._take, args=(delay_s,), daemon=True).start()

    def _take(self, delay_s: float) -> None:
        while not self._inter_actor_queue.empty():
            time.sleep(delay_s)
            item = self._inter_actor_queue.get()
            self.iteration += 1  # Ray counts a report as it takes it, before it reaches the result queue
            time.sleep(delay_s / 2)
            self.result_queue.put(item)
            self.result_queue.get()  # Tune takes it
            self.taken_at.append(time.monotonic())


def test_a_trial_returns_only_after_tune_took_its_last_report():
    session = _TrialSession(reports=3, delay_s=0.2)
    trial.wait_for_tune_to_take_the_last_report(session, settle_s=0.3, timeout_s=10, poll_s=0.01)
    assert len(session.taken_at) == 3 and time.monotonic() >= session.taken_at[-1]
    assert trial.wait_for_tune_to_take_the_last_report(object()) is None  # no queue: not a Train-in-Tune trial
