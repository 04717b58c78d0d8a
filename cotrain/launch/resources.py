"""What one trial asks of the cluster (``Resources``) and how many trials its nodes place at once."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from cotrain.errors import ClusterError

TRIAL_ACTOR_CPU = 0.01  # the Tune trial actor only drives its TorchTrainer
MAX_TRIALS_AT_ONCE = 1000  # an upper bound for the placement count below


@dataclass(frozen=True)
class Resources:
    """What one trial asks of the cluster, and how its failures are retried.

    ``max_failures``: Ray Train restarts of the worker group (a worker died) from the last
    checkpoint. ``trial_retries``: Ray Tune restarts of the whole trial (its trial actor died,
    e.g. with its node), which also continue from the last checkpoint.
    ``placement_timeout_s``: how long one attempt waits for its workers to be placed.
    """

    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_failures: int = 2
    trial_retries: int = 1
    placement_timeout_s: float = 600.0

    def per_worker(self) -> dict[str, float]:
        return {"CPU": self.cpus_per_worker, "GPU": self.gpus_per_worker}

    def describe(self) -> str:
        gpu = f" + {self.gpus_per_worker:g} GPU" if self.gpus_per_worker else ""
        return (f"{self.workers} worker(s) x ({self.cpus_per_worker:g} CPU{gpu}) "
                f"+ {TRIAL_ACTOR_CPU:g} CPU for the trial actor")

    def trials_that_fit(self, nodes: list[dict[str, float]]) -> int:
        """How many trials run at once on ``nodes`` (each node's CPU/GPU totals).

        Placed the way Ray does, trial by trial: the trial actor on the node with the most free
        CPU, then each worker on the fullest node that still takes it (Ray Train packs them).
        Zero means one trial can never start.
        """
        free = [{"CPU": n.get("CPU", 0.0), "GPU": n.get("GPU", 0.0)} for n in nodes]
        for placed in range(MAX_TRIALS_AT_ONCE):
            if not self._place_one(free):
                return placed
        return MAX_TRIALS_AT_ONCE

    def _place_one(self, free: list[dict[str, float]]) -> bool:
        eps = 1e-9
        actor_node = max(free, key=lambda n: n["CPU"], default=None)
        if actor_node is None or actor_node["CPU"] + eps < TRIAL_ACTOR_CPU:
            return False
        actor_node["CPU"] -= TRIAL_ACTOR_CPU
        need = self.per_worker()
        for _ in range(self.workers):
            fitting = [n for n in free if all(n[k] + eps >= v for k, v in need.items())]
            if not fitting:
                return False
            node = min(fitting, key=lambda n: (n["GPU"], n["CPU"]))
            for k, v in need.items():
                node[k] -= v
        return True


def local_cpu_share(workers: int, total: Optional[int] = None) -> float:
    """CPUs per worker that leave room for the 0.01-CPU trial actor on this machine."""
    total = total or os.cpu_count() or 1
    return max(0.5, (total - 0.05) / workers)


def node_resources() -> list[dict[str, float]]:
    """CPU and GPU totals of every live node."""
    import ray
    return [{k: float(n["Resources"].get(k, 0.0)) for k in ("CPU", "GPU")} for n in ray.nodes() if n["Alive"]]


def trials_at_once(resources: Resources, nodes: Optional[list[dict[str, float]]] = None) -> int:
    """How many trials the cluster (or ``nodes``) runs at once; ``ClusterError`` when one trial fits no node."""
    nodes = node_resources() if nodes is None else nodes
    fits = resources.trials_that_fit(nodes)
    if fits == 0:
        largest = max(nodes, key=lambda n: (n["GPU"], n["CPU"]), default={"CPU": 0.0, "GPU": 0.0})
        raise ClusterError(f"one trial needs {resources.describe()}, which no node of the Ray cluster can "
                           f"place (largest node: {largest['CPU']:g} CPU, {largest['GPU']:g} GPU); lower "
                           "--cpus-per-trial/--gpus-per-trial/--workers-per-trial or add bigger nodes")
    return fits


def embedded_node(num_cpus: Optional[int]) -> list[dict[str, float]]:
    """The CPUs of the one node an embedded Ray will have (``num_cpus`` or this machine's), known before
    it starts; its GPUs are Ray's own count, so this node has none (a check for GPU-free trials only)."""
    return [{"CPU": float(num_cpus or os.cpu_count() or 1), "GPU": 0.0}]
