"""Ray glue: every run is a Ray Tune trial that drives a Ray Train ``TorchTrainer``.

A single ``python -m cotrain.train`` run is a one-trial experiment, so single runs and
sweeps leave the same files (Tune's ``result.json``/``params.json`` per trial; checkpoints
under ``<experiment>/_train/train-<trial id>/``) and the table script reads both.

Modules: ``env`` (console switches, set on import; the workers' environment), ``resources`` (what a trial
asks, how many fit), ``storage`` (experiment folders), ``trial`` (the trial function and its Train workers),
``session`` (``ray_session``) with ``embedded`` (the local Ray) and ``cluster`` (connecting to one),
``experiment`` (``run_experiment``, Ctrl-C), ``tracking`` (MLflow). Callers import from here, inside their
functions, so that tests may replace ``run_experiment`` and ``ray_session`` on this package.
"""
from __future__ import annotations

from cotrain.launch.env import RAY_NOISE, WORKER_ENV, quiet_ray_console_env, worker_runtime_env
from cotrain.launch.experiment import INTERRUPTED, RunInterrupted, run_experiment
from cotrain.launch.resources import (
    MAX_TRIALS_AT_ONCE,
    TRIAL_ACTOR_CPU,
    Resources,
    local_cpu_share,
    node_resources,
    trials_at_once,
)
from cotrain.launch.session import ray_session
from cotrain.launch.storage import TRAIN_SUBDIR, absolute_storage, experiment_exists, resume_stage
from cotrain.launch.tracking import create_local_store, mlflow_callback, require_tracking_server
from cotrain.launch.trial import (
    DATA_ERROR,
    PLACEMENT_TIMEOUT_ENV,
    SCRATCH_KEY,
    checkpoint_scratch,
    flatten_cell,
    run_trial,
    train_loop_per_worker,
    trial_error,
)

__all__ = [
    "DATA_ERROR", "INTERRUPTED", "MAX_TRIALS_AT_ONCE", "PLACEMENT_TIMEOUT_ENV", "RAY_NOISE", "SCRATCH_KEY",
    "TRAIN_SUBDIR", "TRIAL_ACTOR_CPU", "WORKER_ENV", "Resources", "RunInterrupted", "absolute_storage",
    "checkpoint_scratch", "create_local_store", "experiment_exists", "flatten_cell", "local_cpu_share",
    "mlflow_callback", "node_resources", "quiet_ray_console_env", "ray_session", "require_tracking_server",
    "resume_stage", "run_experiment", "run_trial", "train_loop_per_worker", "trial_error",
    "trials_at_once", "worker_runtime_env",
]  # fmt: skip
