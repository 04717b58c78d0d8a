"""The function each Tune trial runs (``run_trial``: one Ray Train run) and its Train workers' loop."""
from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Optional

from cotrain.config import TrainConfig, is_uri
from cotrain.errors import DataError
from cotrain.launch.resources import Resources
from cotrain.launch.storage import TRAIN_SUBDIR, join_storage
from cotrain.portable import check_pinned, threads
from cotrain.provenance import first_report_carries
from cotrain.tables import LAYOUT_KEY

PLACEMENT_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"  # Ray Train's wait for a trial's workers
DATA_ERROR = "data_error"  # the metric a Train worker reports its DataError under
SCRATCH_KEY = "_checkpoint_scratch"  # run_trial -> its Train workers: where checkpoints are written first


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Runs in each Ray Train worker: the co-training loop, resumed from Ray's checkpoint if any."""
    import ray.train
    import torch

    from cotrain.engine.loop import fit

    config = dict(config)
    scratch = config.pop(SCRATCH_KEY, None)
    cfg = TrainConfig.from_dict(config)
    if cfg.portable:  # before this process computes anything (Ray started it with the variables already)
        check_pinned("this Ray Train worker")
    context = ray.train.get_context()
    distributed = context.get_world_size() > 1
    if not torch.cuda.is_available():
        torch.set_num_threads(threads(cfg.cpu_threads, cfg.portable, _assigned_cpus()))

    node_id = ray.get_runtime_context().get_node_id()

    def send(metrics: dict, folder: Optional[str]) -> None:
        checkpoint = ray.train.Checkpoint.from_directory(folder) if folder else None
        # Tune records rank 0's reports: node_id says where the trial ran (and moved after a node loss).
        ray.train.report({**metrics, "node_id": node_id}, checkpoint=checkpoint)

    report = first_report_carries(send, cfg)  # the trial's result.json records where its numbers came from

    checkpoint = ray.train.get_checkpoint()
    with (checkpoint.as_directory() if checkpoint else nullcontext(None)) as resume_from:
        try:
            fit(cfg, report, resume_from=resume_from, is_main=context.get_world_rank() == 0,
                wrap=ray.train.torch.prepare_model if distributed else (lambda m: m),
                distributed=distributed, scratch=Path(scratch) if scratch else None)
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


def run_trial(config: dict[str, Any], *, storage: str, experiment: str, resources: Resources) -> None:
    """A Tune function trainable: one TorchTrainer run whose reports reach Tune."""
    import ray.train
    import ray.tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    config = flatten_cell(config)
    trial_id = ray.tune.get_context().get_trial_id()
    marker = _data_error_marker(storage, experiment, trial_id)
    if marker is not None and marker.is_file():  # Tune retries failed trials; bad data fails alike each time
        raise _data_error(marker.read_text())
    # Read by Ray Train's controller (it inherits this actor's setting): without a bound, workers that
    # fit no node are waited for, and retried, forever. A value set by the user wins.
    os.environ.setdefault(PLACEMENT_TIMEOUT_ENV, f"{resources.placement_timeout_s:g}")
    use_gpu = resources.gpus_per_worker > 0
    per_worker = {"CPU": resources.cpus_per_worker, **({"GPU": resources.gpus_per_worker} if use_gpu else {})}
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={**config, SCRATCH_KEY: str(checkpoint_scratch(storage, experiment, trial_id))},
        scaling_config=ray.train.ScalingConfig(num_workers=resources.workers, use_gpu=use_gpu,
                                               resources_per_worker=per_worker),
        run_config=ray.train.RunConfig(
            # A stable name: after Tuner.restore an interrupted trial resumes its own Train run.
            name=f"train-{trial_id}",
            storage_path=join_storage(storage, experiment, TRAIN_SUBDIR),
            callbacks=[TuneReportCallback()],
            # Ray Train's INFO lines (resources, every report) stay in its log files.
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),
            # controller_failure_limit=0: a placement time-out fails this attempt (Tune may retry the
            # trial) instead of Train's default of retrying it forever.
            failure_config=ray.train.FailureConfig(max_failures=resources.max_failures,
                                                   controller_failure_limit=0),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2)),
    )
    result = trainer.fit()
    wait_for_tune_to_take_the_last_report()
    if (result.metrics or {}).get("epoch") != config["epochs"]:  # ended early without an error: bad data
        message = f"the run stopped on data it could not use; its last report ({DATA_ERROR}) names the file"
        if marker is not None:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(message)
        raise _data_error(message)


def wait_for_tune_to_take_the_last_report(session: Any = None, settle_s: float = 1.0, timeout_s: float = 120.0,
                                          poll_s: float = 0.05) -> None:
    """Return once this trial actor's main thread has taken TorchTrainer's last report (a race in Ray 2.60).

    TorchTrainer's reports reach Tune through a one-item queue that the trial actor's main thread moves
    into its own one-item result queue. When the Tune function returns, Tune puts an end-of-trial marker
    into that result queue. Returning while the last report still waited left the marker in the queue,
    and the main thread then blocked forever putting the report behind it: the trial hung after its last
    epoch, with every report written by the worker and the last one missing from ``result.json``. Done
    when both queues are empty and the main thread's report count has not moved for ``settle_s``.
    """
    if session is None:
        from ray.train._internal.session import get_session
        session = get_session()
    pending = getattr(session, "_inter_actor_queue", None)
    if pending is None:
        return
    deadline = time.monotonic() + timeout_s
    seen, since = None, time.monotonic()
    while time.monotonic() < deadline:
        state = (session.iteration, pending.empty() and session.result_queue.empty())
        now = time.monotonic()
        if state != seen:
            seen, since = state, now
        elif state[1] and now - since >= settle_s:
            return
        time.sleep(poll_s)


def checkpoint_scratch(storage: str, experiment: str, trial_id: str) -> Path:
    """Where a trial's workers write each checkpoint before Ray Train copies it into storage: inside the
    trial's own Train folder (local storage), so that a save killed half-way never stays in ``$TMPDIR``;
    ``fit`` empties it when the trial (re)starts. With ``s3://``... storage, a fixed local folder per trial."""
    if is_uri(storage):
        import tempfile
        return Path(tempfile.gettempdir(), "cotrain-checkpoint-tmp", f"{experiment}-train-{trial_id}")
    return Path(join_storage(storage, experiment, TRAIN_SUBDIR, f"train-{trial_id}", ".checkpoint-tmp"))


def _data_error_marker(storage: str, experiment: str, trial_id: str) -> Optional[Path]:
    """Where a trial records that its data cannot be used, so that Tune's retry fails at once (local storage)."""
    return None if is_uri(storage) else Path(join_storage(storage, experiment, TRAIN_SUBDIR, f"train-{trial_id}",
                                                    "data_error.txt"))


def _data_error(message: str) -> Exception:
    return DataError(message)


def trial_error(result) -> BaseException:
    """What a failed trial means to the user: its data error (one line, exit 2), else a run failure."""
    if (result.metrics or {}).get(DATA_ERROR):
        return DataError(result.metrics[DATA_ERROR])
    return SystemExit(f"run failed: {result.error}")


def flatten_cell(config: dict[str, Any]) -> dict[str, Any]:
    """Sweeps grid over whole table cells (``cell``: a dict of overrides); merge one into the config.

    The declared table (``layout``) is for make_tables.py only and is dropped here.
    """
    config = dict(config)
    cell = config.pop("cell", {})
    config.pop(LAYOUT_KEY, None)
    return {**config, **cell}
