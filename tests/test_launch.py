"""Ray glue: trial resources, cell flattening and the embedded Ray session."""
from __future__ import annotations

import os

import pytest

from cotrain.launch import Resources, flatten_cell, local_cpu_share


@pytest.mark.parametrize("resources,cluster,expected", [
    (Resources(cpus_per_worker=0.975), {"CPU": 2.0}, 2),
    (Resources(cpus_per_worker=1.95), {"CPU": 2.0}, 1),
    (Resources(workers=2, cpus_per_worker=1.0), {"CPU": 8.0}, 4),
    (Resources(cpus_per_worker=1.0, gpus_per_worker=0.5), {"CPU": 16.0, "GPU": 1.0}, 2),
    (Resources(cpus_per_worker=4.0), {"CPU": 2.0}, 1),  # never 0: the one trial waits for resources
])
def test_max_concurrent_is_what_the_cluster_fits_of_one_trials_workers(resources, cluster, expected):
    assert resources.max_concurrent(cluster) == expected


def test_local_cpu_share_leaves_room_for_the_trial_actors():
    assert local_cpu_share(2, total=2) == pytest.approx(0.975)
    assert 2 * local_cpu_share(2, total=2) + 2 * 0.01 <= 2
    assert local_cpu_share(8, total=2) == 0.5


def test_flatten_cell_merges_the_cell_over_the_shared_config():
    config = {"alpha": 1.0, "seed": 0, "cell": {"method": "ours", "alpha": 0.5}}
    assert flatten_cell(config) == {"alpha": 0.5, "seed": 0, "method": "ours"}
    assert "cell" in config  # the caller's dict is left alone


@pytest.mark.slow
def test_embedded_ray_runs_workers_at_normal_priority():
    ray = pytest.importorskip("ray")
    from cotrain.launch import ray_session

    with ray_session(num_cpus=1, quiet=True):
        niceness = ray.get(ray.remote(num_cpus=1)(lambda: os.nice(0)).remote())
    assert niceness == 0  # Ray's default would be 15
