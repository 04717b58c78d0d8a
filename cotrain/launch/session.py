"""``ray_session``: an embedded Ray on 127.0.0.1 or a running cluster, for the length of a command."""
from __future__ import annotations

import os
import signal
from contextlib import contextmanager
from typing import Iterator, Optional

from cotrain.launch.cluster import _connect_cluster
from cotrain.launch.embedded import _start_local_ray
from cotrain.launch.resources import Resources, embedded_node, trials_at_once


@contextmanager
def ray_session(cluster: bool = False, num_cpus: Optional[int] = None, quiet: bool = False,
                resources: Optional[Resources] = None) -> Iterator[None]:
    """Connect to a running cluster (``cluster``) or start an embedded one on 127.0.0.1.

    With ``resources``, fails (``ClusterError``) at once when one trial fits no node. The
    embedded Ray is shut down on exit, Ctrl-C included; with ``cluster`` we only disconnect.
    The console shows Tune's table and our workers' lines once; Ray's internals go to its log
    files, whose folder is printed.
    """
    _quiet_ray_session(cluster)
    if resources is not None and not cluster and not resources.gpus_per_worker:
        trials_at_once(resources, embedded_node(num_cpus))  # a trial this machine cannot place: before Ray starts
    if not cluster:
        # Else Ray swaps 127.0.0.1 for the machine's address and its servers listen there.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # Ray runs its workers at nice 15, below its own daemons; on a small machine every daemon
        # wake-up then stalls the training threads (~5 % slower steps, measured on 2 cores).
        os.environ.setdefault("RAY_worker_niceness", "0")
    import ray

    exported_api_address = not cluster and not os.environ.get("RAY_API_SERVER_ADDRESS")
    if cluster:
        _connect_cluster(ray)
    else:
        ray._private.ray_constants.ENABLE_RAY_CLUSTER = False  # the same, should ray be imported already
        # address="local": never join the cluster an address file names (a stale one hangs ray.init).
        # The dashboard (on 127.0.0.1) serves the State API that Ray Train's placement-group cleaner
        # needs: without it, trials that ASHA stops leak their workers' CPUs and the sweep stalls.
        _start_local_ray(ray, num_cpus, quiet)
    _print_log_folder(ray, cluster)
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        if resources is not None:
            trials_at_once(resources)
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        ray.shutdown()
        if exported_api_address:
            os.environ.pop("RAY_API_SERVER_ADDRESS", None)


def _quiet_ray_session(cluster: bool) -> None:
    import logging
    if not cluster:  # one local node is never drained: the watcher actor is one idle process per trial
        os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    # Tune's TensorBoard logger warns once per trial about list metrics (class names, per-class IoU).
    logging.getLogger("ray.tune.logger.tensorboardx").setLevel(logging.ERROR)


def _print_log_folder(ray, cluster: bool) -> None:
    node = getattr(ray._private.worker, "_global_node", None)
    if node is not None:
        where = "on each node, " if cluster else ""
        print(f"Ray's own logs (workers, Ray Train internals): {where}{node.get_logs_dir_path()}", flush=True)
