"""One Tune experiment (``run_experiment``), and Ctrl-C during it (``RunInterrupted``)."""
from __future__ import annotations

import signal
import threading
from typing import Any, Optional

from cotrain.launch.resources import TRIAL_ACTOR_CPU, Resources, trials_at_once
from cotrain.launch.storage import join_storage
from cotrain.launch.trial import run_trial


def run_experiment(space: dict[str, Any], *, name: str, storage: str, resources: Resources,
                   metric: Optional[str] = None, mode: str = "max", search_alg: Any = None,
                   scheduler: Any = None, num_samples: int = 1, resume: bool = False, verbose: int = 1,
                   callbacks: Optional[list] = None, trainable: Any = None, reuse_actors: bool = False,
                   command_name: Optional[str] = None):
    """Run (or resume) one Tune experiment under ``<storage>/<name>``; returns Tune's ResultGrid.

    Call inside ``ray_session``. Concurrency = how many trials (Train workers plus the
    0.01-CPU trial actor) the cluster's nodes hold at once. A trial whose trial actor dies (its
    node was lost) is restarted and continues from its last checkpoint; finished trials stay.
    ``callbacks``: extra Tune callbacks (e.g. ``mlflow_callback``); Tune adds its CSV, JSON and
    TensorBoard loggers itself (TensorBoard events in every trial folder).
    ``trainable``: the function each trial runs, called as ``run_trial`` is (the default); the search
    passes one that trains a setting on several seeds (``cotrain.search.run_setting``).
    ``reuse_actors``: keep a finished trial's actor for the next trial (``python -m cotrain.bench_overhead``
    measures it). Off by default: reusing an actor needs the previous trial's training thread to have
    ended, and after ASHA (any scheduler) stops a trial its TorchTrainer runs on until its next report, so
    the reset fails and the next trial errors ("reset_config() ...").
    ``command_name``: the ``--name`` an interrupted run is resumed with (a sweep's stages run under their own
    names, e.g. ``<name>-pretrain``); default ``name``.
    """
    from ray import tune

    trainable = tune.with_resources(
        tune.with_parameters(trainable or run_trial, storage=storage, experiment=name, resources=resources),
        {"CPU": TRIAL_ACTOR_CPU})
    path = join_storage(storage, name)
    INTERRUPTED.clear()
    if resume:
        return _unless_interrupted(tune.Tuner.restore(path, trainable=trainable, resume_errored=True).fit(),
                                   command_name or name)
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=search_alg, scheduler=scheduler,
                                    num_samples=num_samples,
                                    reuse_actors=reuse_actors,
                                    max_concurrent_trials=trials_at_once(resources)),
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=verbose,
                                  failure_config=tune.FailureConfig(max_failures=resources.trial_retries),
                                  callbacks=[_interrupt_watch(), *(callbacks or [])]),
    )
    return _unless_interrupted(tuner.fit(), command_name or name)


INTERRUPTED = threading.Event()


def _interrupt_watch():
    """A Tune callback that notes Ctrl-C: Tune handles it itself (saves, then returns as if done)."""
    from ray import tune

    class InterruptWatch(tune.Callback):
        def setup(self, **info: Any) -> None:  # runs after Tune installed its SIGINT handler
            tune_handler = signal.getsignal(signal.SIGINT)

            def note(signum, frame) -> None:
                from cotrain.launch import experiment  # the live module (Tune pickles this callback into tuner.pkl)
                experiment.INTERRUPTED.set()
                if callable(tune_handler):
                    tune_handler(signum, frame)
            signal.signal(signal.SIGINT, note)

    return InterruptWatch()


def _unless_interrupted(grid, name: str):
    if INTERRUPTED.is_set():
        raise RunInterrupted(name)
    return grid


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) ended a run; the message says how to resume it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"interrupted; resume with the same command plus --resume --name {name}")
