"""Ray glue: every run is a Ray Tune trial that drives a Ray Train ``TorchTrainer``.

A single ``python -m cotrain.train`` run is a one-trial experiment, so single runs and
sweeps leave the same files (Tune's ``result.json``/``params.json`` per trial; checkpoints
under ``<experiment>/_train/train-<trial id>/``) and the table script reads both.
"""
from __future__ import annotations

import math
import os
import signal
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from cotrain.config import TrainConfig

TRAIN_SUBDIR = "_train"
DATA_ERROR = "data_error"  # the metric a Train worker reports its DataError under


@dataclass(frozen=True)
class Resources:
    """What one trial's Train workers ask for; the Tune trial actor itself only drives."""

    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_failures: int = 2

    def per_trial(self) -> dict[str, float]:
        return {"CPU": self.workers * self.cpus_per_worker, "GPU": self.workers * self.gpus_per_worker}

    def max_concurrent(self, cluster: dict[str, float]) -> int:
        """How many trials fit at once (trial actors take 0.01 CPU, so workers never starve)."""
        demand = self.per_trial()
        fits = [math.floor(cluster.get(k, 0.0) / v + 1e-9) for k, v in demand.items() if v > 0]
        return max(1, min(fits)) if fits else 1


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Runs in each Ray Train worker: the co-training loop, resumed from Ray's checkpoint if any."""
    import ray.train
    import torch

    from cotrain.data import DataError
    from cotrain.engine.loop import fit

    cfg = TrainConfig.from_dict(config)
    context = ray.train.get_context()
    distributed = context.get_world_size() > 1
    if not torch.cuda.is_available():
        torch.set_num_threads(_assigned_cpus())

    def report(metrics: dict, folder: Optional[str]) -> None:
        checkpoint = ray.train.Checkpoint.from_directory(folder) if folder else None
        ray.train.report(metrics, checkpoint=checkpoint)

    checkpoint = ray.train.get_checkpoint()
    with (checkpoint.as_directory() if checkpoint else nullcontext(None)) as resume_from:
        try:
            fit(cfg, report, resume_from=resume_from, is_main=context.get_world_rank() == 0,
                wrap=ray.train.torch.prepare_model if distributed else (lambda m: m),
                distributed=distributed)
        except DataError as exc:
            if distributed:  # the other ranks wait in collectives: only a failure ends them (after retries)
                raise
            # Ray Train retries every worker error; bad data fails the same way each time, so end the
            # Train run normally with the error as its last report (it reaches Tune's result) and let
            # run_trial fail the trial (Tune does not retry it).
            ray.train.report({DATA_ERROR: str(exc)})


def _assigned_cpus() -> int:
    """Threads for this worker: its Ray CPU share rounded up (shares are fractional, see local_cpu_share)."""
    import ray
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    return max(1, math.ceil(cpus - 1e-6))


def local_cpu_share(workers: int, total: Optional[int] = None) -> float:
    """CPUs per worker that leave room for the 0.01-CPU trial actor on this machine."""
    total = total or os.cpu_count() or 1
    return max(0.5, (total - 0.05) / workers)


def run_trial(config: dict[str, Any], *, storage: str, experiment: str, resources: Resources) -> None:
    """A Tune function trainable: one TorchTrainer run whose reports reach Tune."""
    import ray.train
    import ray.tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    config = flatten_cell(config)
    trial_id = ray.tune.get_context().get_trial_id()
    use_gpu = resources.gpus_per_worker > 0
    per_worker = {"CPU": resources.cpus_per_worker, **({"GPU": resources.gpus_per_worker} if use_gpu else {})}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(num_workers=resources.workers, use_gpu=use_gpu,
                                               resources_per_worker=per_worker),
        run_config=ray.train.RunConfig(
            # A stable name: after Tuner.restore an interrupted trial resumes its own Train run.
            name=f"train-{trial_id}",
            storage_path=_join(storage, experiment, TRAIN_SUBDIR),
            callbacks=[TuneReportCallback()],
            failure_config=ray.train.FailureConfig(max_failures=resources.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2)),
    )
    result = trainer.fit()
    if (result.metrics or {}).get("epoch") != config["epochs"]:  # ended early without an error: bad data
        from cotrain.data import DataError  # here: the trial actor skips the data package otherwise
        raise DataError(f"the run stopped on data it could not use; its last report ({DATA_ERROR}) names the file")


def trial_error(result) -> BaseException:
    """What a failed trial means to the user: its data error (one line, exit 2), else a run failure."""
    from cotrain.data import DataError
    if (result.metrics or {}).get(DATA_ERROR):
        return DataError(result.metrics[DATA_ERROR])
    return SystemExit(f"run failed: {result.error}")


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) ended a run; the message says how to resume it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"interrupted; resume with the same command plus --resume --name {name}")


def flatten_cell(config: dict[str, Any]) -> dict[str, Any]:
    """Sweeps grid over whole table cells (``cell``: a dict of overrides); merge one into the config."""
    config = dict(config)
    cell = config.pop("cell", {})
    return {**config, **cell}


def _join(storage: str, *parts: str) -> str:
    return "/".join([storage.rstrip("/"), *parts]) if "://" in storage else str(Path(storage, *parts))


def absolute_storage(storage: str) -> str:
    """Ray needs absolute local paths; URIs (``s3://``...) pass through."""
    return storage if "://" in storage else str(Path(storage).expanduser().resolve())


@contextmanager
def ray_session(cluster: bool = False, num_cpus: Optional[int] = None, quiet: bool = False) -> Iterator[None]:
    """Connect to a running cluster (``cluster``) or start an embedded one on 127.0.0.1.

    The embedded Ray is shut down on exit, Ctrl-C included; with ``cluster`` we only disconnect.
    """
    if not cluster:
        # Else Ray swaps 127.0.0.1 for the machine's address and its servers listen there.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # Ray runs its workers at nice 15, below its own daemons; on a small machine every daemon
        # wake-up then stalls the training threads (~5 % slower steps, measured on 2 cores).
        os.environ.setdefault("RAY_worker_niceness", "0")
    import ray

    if cluster:
        _connect_cluster(ray)
    else:
        ray._private.ray_constants.ENABLE_RAY_CLUSTER = False  # the same, should ray be imported already
        # The dashboard (on 127.0.0.1) serves the State API that Ray Train's placement-group cleaner
        # needs: without it, trials that ASHA stops leak their workers' CPUs and the sweep stalls.
        ray.init(num_cpus=num_cpus, dashboard_host="127.0.0.1", _node_ip_address="127.0.0.1",
                 log_to_driver=not quiet, configure_logging=True, logging_level="warning")
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        ray.shutdown()


class ClusterError(RuntimeError):
    """``--cluster`` was asked for but no Ray cluster answered."""


def _connect_cluster(ray) -> None:
    address = os.environ.get("RAY_ADDRESS", "auto")
    if address != "auto" and "://" not in address:
        # Ray 2.60 with an explicit host:port needs token auth spelled out (RAY_NOTES.md).
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        _require_reachable(address)
    try:
        ray.init(address=address, logging_level="warning")
    except ConnectionError as exc:
        raise ClusterError(f"--cluster: no Ray cluster at {address!r} ({exc}); start one with "
                           "'ray start --head' or set RAY_ADDRESS=host:port") from exc


def _require_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds when nothing listens at ``host:port`` (ray.init would retry for minutes)."""
    import socket
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise ClusterError(f"--cluster: no Ray cluster at {address!r} ({reason}); start one with "
                           "'ray start --head' or set RAY_ADDRESS=host:port") from exc


def cluster_resources() -> dict[str, float]:
    import ray
    return {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}


def run_experiment(space: dict[str, Any], *, name: str, storage: str, resources: Resources,
                   metric: Optional[str] = None, mode: str = "max", search_alg: Any = None,
                   scheduler: Any = None, num_samples: int = 1, resume: bool = False, verbose: int = 1):
    """Run (or resume) one Tune experiment under ``<storage>/<name>``; returns Tune's ResultGrid.

    Call inside ``ray_session``. Concurrency = what the cluster's CPUs/GPUs fit of one
    trial's Train workers; the trial actor itself asks for 0.01 CPU so it never blocks them.
    """
    from ray import tune

    trainable = tune.with_resources(
        tune.with_parameters(run_trial, storage=storage, experiment=name, resources=resources), {"CPU": 0.01})
    path = _join(storage, name)
    INTERRUPTED.clear()
    if resume:
        return _unless_interrupted(tune.Tuner.restore(path, trainable=trainable, resume_errored=True).fit(), name)
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=search_alg, scheduler=scheduler,
                                    num_samples=num_samples,
                                    # Reusing trial actors saved ~1.5 s per trial, but after ASHA stops
                                    # a trial the next one fails ("reset_config() ..."): kept off.
                                    reuse_actors=False,
                                    max_concurrent_trials=resources.max_concurrent(cluster_resources())),
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=verbose, callbacks=[_interrupt_watch()]),
    )
    return _unless_interrupted(tuner.fit(), name)


INTERRUPTED = threading.Event()


def _interrupt_watch():
    """A Tune callback that notes Ctrl-C: Tune handles it itself (saves, then returns as if done)."""
    from ray import tune

    class InterruptWatch(tune.Callback):
        def setup(self, **info: Any) -> None:  # runs after Tune installed its SIGINT handler
            tune_handler = signal.getsignal(signal.SIGINT)

            def note(signum, frame) -> None:
                from cotrain import launch  # the live module (Tune pickles this callback into tuner.pkl)
                launch.INTERRUPTED.set()
                if callable(tune_handler):
                    tune_handler(signum, frame)
            signal.signal(signal.SIGINT, note)

    return InterruptWatch()


def _unless_interrupted(grid, name: str):
    if INTERRUPTED.is_set():
        raise RunInterrupted(name)
    return grid


def experiment_exists(storage: str, name: str) -> bool:
    """Whether an experiment folder already holds Tune state (local storage only)."""
    return "://" not in storage and Path(storage, name, "tuner.pkl").exists()
