"""Ray glue: every run is a Ray Tune trial that drives a Ray Train ``TorchTrainer``.

A single ``python -m cotrain.train`` run is a one-trial experiment, so single runs and
sweeps leave the same files (Tune's ``result.json``/``params.json`` per trial; checkpoints
under ``<experiment>/_train/train-<trial id>/``) and the table script reads both.
"""
from __future__ import annotations

import math
import os
import signal
import socket
import sys
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from cotrain.config import ConfigError, TrainConfig, is_uri
from cotrain.portable import check_pinned, threads, worker_env
from cotrain.provenance import first_report_carries
from cotrain.tables import LAYOUT_KEY

TRAIN_SUBDIR = "_train"
TRIAL_ACTOR_CPU = 0.01  # the Tune trial actor only drives its TorchTrainer
PLACEMENT_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"  # Ray Train's wait for a trial's workers
MAX_TRIALS_AT_ONCE = 1000  # an upper bound for the placement count below
# Ray-internal console lines that ask nothing of the user; they stay in Ray's log files. In Ray 2.60
# the PreemptionWatcher error comes from Ray Train's own watcher actor on every trial, and the
# per-report lines from a logger named after its file, which Train's LoggingConfig does not reach.
RAY_NOISE = (r"PreemptionWatcher.*max_restarts|PYTHON worker processes have been started"
             r"|Reporting training result \d+: TrainingReport|Checkpoint successfully created at")
# Ray Train tees a worker's print() through its logger as well: every line reached the console twice.
# Workers inherit it from the Ray that starts them: the embedded one here, `ray start` on clusters.
WORKER_ENV = {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}


def quiet_ray_console_env() -> None:
    """Ray's own switches for a readable console. Ray reads them when it is imported (driver) or
    started (workers), so this runs when this module is imported, before any ``import ray`` here."""
    # Ray's de-duplication ignores digits, so it folded different trials' progress lines into one
    # "[repeated 6x across cluster]": every line passes as it is, except RAY_NOISE.
    os.environ.setdefault("RAY_DEDUP_LOGS_SKIP_REGEX", RAY_NOISE)
    os.environ.setdefault("RAY_DEDUP_LOGS_ALLOW_REGEX", f"^(?!.*(?:{RAY_NOISE}))")
    for key, value in WORKER_ENV.items():
        os.environ.setdefault(key, value)


quiet_ray_console_env()

DATA_ERROR = "data_error"  # the metric a Train worker reports its DataError under
SCRATCH_KEY = "_checkpoint_scratch"  # run_trial -> its Train workers: where checkpoints are written first


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


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Runs in each Ray Train worker: the co-training loop, resumed from Ray's checkpoint if any."""
    import ray.train
    import torch

    from cotrain.data import DataError
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
            storage_path=_join(storage, experiment, TRAIN_SUBDIR),
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
    if (result.metrics or {}).get("epoch") != config["epochs"]:  # ended early without an error: bad data
        message = f"the run stopped on data it could not use; its last report ({DATA_ERROR}) names the file"
        if marker is not None:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(message)
        raise _data_error(message)


def checkpoint_scratch(storage: str, experiment: str, trial_id: str) -> Path:
    """Where a trial's workers write each checkpoint before Ray Train copies it into storage: inside the
    trial's own Train folder (local storage), so that a save killed half-way never stays in ``$TMPDIR``;
    ``fit`` empties it when the trial (re)starts. With ``s3://``... storage, a fixed local folder per trial."""
    if is_uri(storage):
        import tempfile
        return Path(tempfile.gettempdir(), "cotrain-checkpoint-tmp", f"{experiment}-train-{trial_id}")
    return Path(_join(storage, experiment, TRAIN_SUBDIR, f"train-{trial_id}", ".checkpoint-tmp"))


def _data_error_marker(storage: str, experiment: str, trial_id: str) -> Optional[Path]:
    """Where a trial records that its data cannot be used, so that Tune's retry fails at once (local storage)."""
    return None if is_uri(storage) else Path(_join(storage, experiment, TRAIN_SUBDIR, f"train-{trial_id}",
                                                    "data_error.txt"))


def _data_error(message: str) -> Exception:
    from cotrain.data import DataError  # here: the trial actor skips the data package otherwise
    return DataError(message)


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
    """Sweeps grid over whole table cells (``cell``: a dict of overrides); merge one into the config.

    The declared table (``layout``) is for make_tables.py only and is dropped here.
    """
    config = dict(config)
    cell = config.pop("cell", {})
    config.pop(LAYOUT_KEY, None)
    return {**config, **cell}


def _join(storage: str, *parts: str) -> str:
    return "/".join([storage.rstrip("/"), *parts]) if is_uri(storage) else str(Path(storage, *parts))


def absolute_storage(storage: str) -> str:
    """Ray needs absolute local paths; URIs (``s3://``...) pass through."""
    return storage if is_uri(storage) else str(Path(storage).expanduser().resolve())


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


NODE_STARTUP_TIMEOUT = "The current node timed out during startup"  # Ray's message (ray/_private/node.py)
RAY_NODE_WAIT_S = 30  # how long Ray itself waits for its raylet to register (fixed in Ray 2.60)
RETRY_NODE_WAIT_S = 120  # the second try's wait


def _start_local_ray(ray, num_cpus: Optional[int], quiet: bool) -> None:
    """``ray.init`` of the embedded Ray on 127.0.0.1; a node start-up that times out (a loaded machine)
    is tried once more, waiting ``RETRY_NODE_WAIT_S``; a second time-out is a ``ClusterError``."""
    port = _state_api_port()
    options = dict(address="local", num_cpus=num_cpus, dashboard_host="127.0.0.1", dashboard_port=port,
                   _node_ip_address="127.0.0.1", log_to_driver=not quiet, configure_logging=True,
                   logging_level="warning", runtime_env=worker_runtime_env())
    before = _own_children()
    try:
        ray.init(**options)
        return
    except Exception as exc:  # Ray raises a bare Exception for this
        if NODE_STARTUP_TIMEOUT not in str(exc):
            raise
    _end_processes(_own_children() - before)  # what the failed start left running
    ray.shutdown()
    before = _own_children()
    try:
        with _patient_node_wait(ray, RETRY_NODE_WAIT_S):
            ray.init(**options)
    except Exception as exc:
        if NODE_STARTUP_TIMEOUT not in str(exc):
            raise
        _end_processes(_own_children() - before)
        raise ClusterError(f"Ray's node did not start on this machine, twice (waited {RAY_NODE_WAIT_S} s, then "
                           f"{RETRY_NODE_WAIT_S} s): the machine is too loaded or short of memory for Ray's "
                           "processes to start; free CPU and memory (other runs, stray 'ray' processes) and run "
                           "the same command again") from None


@contextmanager
def _patient_node_wait(ray, seconds: float) -> Iterator[None]:
    """Make Ray's start-up wait up to ``seconds`` for its node to register (its own limit is fixed at 30 s):
    each of Ray's polls keeps asking until then."""
    import time
    services = ray._private.services
    real = services.get_node

    def get_node(*args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + seconds
        while True:
            try:
                return real(*args, **kwargs)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    services.get_node = get_node
    try:
        yield
    finally:
        services.get_node = real


def _own_children() -> set[int]:
    """Pids of this process's direct children (Linux ``/proc``; empty elsewhere)."""
    me, found = os.getpid(), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == me:
                found.add(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _end_processes(pids: set[int], grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``, the processes a failed Ray start left (our own children)."""
    import time
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace_s
        while pids and time.monotonic() < deadline:
            pids = {pid for pid in pids if not _reaped(pid)}
            time.sleep(0.1)
        if not pids:
            return


def _reaped(pid: int) -> bool:
    """Whether child ``pid`` has exited (and reap it)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == pid


def _state_api_port() -> int:
    """A free port for the embedded Ray's dashboard, exported as ``RAY_API_SERVER_ADDRESS``.

    Ray's State API calls inside the cluster (Ray Train's placement-group cleaner) find "their"
    Ray by scanning the machine's processes; with two local runs at once they find two and
    fail ("Found multiple active Ray instances"). Every process this Ray starts inherits the
    variable, so they ask this session's dashboard. A user's own setting is kept.
    """
    if os.environ.get("RAY_API_SERVER_ADDRESS"):
        return int(os.environ["RAY_API_SERVER_ADDRESS"].rsplit(":", 1)[-1])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    os.environ["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{port}"
    return port


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


class ClusterError(RuntimeError):
    """The Ray cluster cannot run what was asked: none answered, authentication differs, or too small."""


def worker_runtime_env() -> Optional[dict[str, Any]]:
    """Every Ray worker of this session starts with the driver's kernel-pinning variables (``--portable``):
    the libraries read them once, before a worker could set them itself; on a cluster this is the only way."""
    env = worker_env()
    return {"env_vars": env} if env else None


def _connect_cluster(ray) -> None:
    address = _cluster_address()
    if not is_uri(address):  # ray:// (Ray Client) does its own handshake
        _require_reachable(address)
        _match_auth_mode(address)
    try:
        ray.init(address=address, logging_level="warning", runtime_env=worker_runtime_env())
    except ConnectionError as exc:
        raise ClusterError(f"--cluster: no Ray cluster at {address!r} ({exc}); start one with "
                           "'ray start --head' or set RAY_ADDRESS=host:port") from exc


def _cluster_address() -> str:
    """``RAY_ADDRESS``, else the running local head Ray finds (its address file)."""
    from ray._private.services import canonicalize_bootstrap_address
    address = os.environ.get("RAY_ADDRESS") or "auto"
    if address != "auto":
        return address
    try:
        found = canonicalize_bootstrap_address("auto")
    except ConnectionError:
        found = None
    if not found:
        raise ClusterError("--cluster: no running Ray cluster found on this machine; start one with "
                           "'ray start --head' or set RAY_ADDRESS=host:port")
    return found


def _match_auth_mode(address: str) -> None:
    """Use token authentication exactly when the cluster at ``address`` does.

    A mismatch fails late and obscurely: without a token, ~20 s of retries then a ConnectionError;
    with one against a cluster without authentication, every actor dies as it starts.
    """
    from ray._raylet import AuthenticationTokenLoader

    asked = os.environ.get("RAY_AUTH_MODE")
    if not _gcs_refuses("disabled", address):
        if asked == "token":
            print(f"note: the Ray cluster at {address} has no token authentication; connecting without a "
                  "token (RAY_AUTH_MODE=token ignored)", file=sys.stderr)
        return
    if not AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True):
        raise ClusterError(f"--cluster: the Ray cluster at {address} requires token authentication and no "
                           "token was found here; copy the head's ~/.ray/auth_token to this machine or set "
                           "RAY_AUTH_TOKEN")
    if _gcs_refuses("token", address):
        raise ClusterError(f"--cluster: the Ray cluster at {address} refused this machine's token; use the "
                           "head's ~/.ray/auth_token (or RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH)")


def _gcs_refuses(auth_mode: str, address: str) -> bool:
    """Whether the cluster's GCS refuses a client in ``auth_mode`` (the mode stays set for ray.init)."""
    from ray._raylet import AuthenticationTokenLoader, Config, GcsClient
    from ray.exceptions import AuthenticationError

    os.environ["RAY_AUTH_MODE"] = auth_mode
    Config.initialize("")  # Ray caches its config; re-read the mode, as Ray's own token setup does
    AuthenticationTokenLoader.instance().reset_cache()
    try:
        GcsClient(address=address)
    except AuthenticationError:
        return True
    return False


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


def node_resources() -> list[dict[str, float]]:
    """CPU and GPU totals of every live node."""
    import ray
    return [{k: float(n["Resources"].get(k, 0.0)) for k in ("CPU", "GPU")} for n in ray.nodes() if n["Alive"]]


def trials_at_once(resources: Resources) -> int:
    """How many trials the cluster runs at once; ``ClusterError`` when one trial fits no node."""
    nodes = node_resources()
    fits = resources.trials_that_fit(nodes)
    if fits == 0:
        largest = max(nodes, key=lambda n: (n["GPU"], n["CPU"]), default={"CPU": 0.0, "GPU": 0.0})
        raise ClusterError(f"one trial needs {resources.describe()}, which no node of the Ray cluster can "
                           f"place (largest node: {largest['CPU']:g} CPU, {largest['GPU']:g} GPU); lower "
                           "--cpus-per-trial/--gpus-per-trial/--workers-per-trial or add bigger nodes")
    return fits


def run_experiment(space: dict[str, Any], *, name: str, storage: str, resources: Resources,
                   metric: Optional[str] = None, mode: str = "max", search_alg: Any = None,
                   scheduler: Any = None, num_samples: int = 1, resume: bool = False, verbose: int = 1,
                   callbacks: Optional[list] = None, trainable: Any = None, reuse_actors: Optional[bool] = None):
    """Run (or resume) one Tune experiment under ``<storage>/<name>``; returns Tune's ResultGrid.

    Call inside ``ray_session``. Concurrency = how many trials (Train workers plus the
    0.01-CPU trial actor) the cluster's nodes hold at once. A trial whose trial actor dies (its
    node was lost) is restarted and continues from its last checkpoint; finished trials stay.
    ``callbacks``: extra Tune callbacks (e.g. ``mlflow_callback``); Tune adds its CSV, JSON and
    TensorBoard loggers itself (TensorBoard events in every trial folder).
    ``trainable``: the function each trial runs, called as ``run_trial`` is (the default); the search
    passes one that trains a setting on several seeds (``cotrain.search.run_setting``).
    ``reuse_actors``: keep a finished trial's actor for the next trial (``python -m cotrain.bench_overhead``
    measures it); None: ``reuse_by_default(scheduler)``.
    """
    from ray import tune

    trainable = tune.with_resources(
        tune.with_parameters(trainable or run_trial, storage=storage, experiment=name, resources=resources),
        {"CPU": TRIAL_ACTOR_CPU})
    path = _join(storage, name)
    INTERRUPTED.clear()
    if resume:
        return _unless_interrupted(tune.Tuner.restore(path, trainable=trainable, resume_errored=True).fit(), name)
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=search_alg, scheduler=scheduler,
                                    num_samples=num_samples,
                                    reuse_actors=reuse_by_default(scheduler) if reuse_actors is None else reuse_actors,
                                    max_concurrent_trials=trials_at_once(resources)),
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=verbose,
                                  failure_config=tune.FailureConfig(max_failures=resources.trial_retries),
                                  callbacks=[_interrupt_watch(), *(callbacks or [])]),
    )
    return _unless_interrupted(tuner.fit(), name)


def reuse_by_default(scheduler: Any) -> bool:
    """Whether trial actors are reused between trials when the caller does not say.

    Reusing an actor needs the previous trial's training thread to have ended: after ASHA (any
    scheduler) stops a trial, its TorchTrainer runs on until its next report, the reset fails and the
    next trial errors ("reset_config() ..."). So never with a scheduler.
    """
    return False


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


def mlflow_callback(uri: Optional[str], storage: str, experiment: str):
    """Tune callback logging every trial's params and metrics to MLflow (``--mlflow``).

    ``uri`` empty: a local SQLite store ``<storage>/mlflow.db`` (MLflow 3 refuses new ``./mlruns``
    file stores); local storage only. Needs ``mlflow`` (``pip install -e ".[mlflow]"``).
    """
    import logging
    try:
        import mlflow  # noqa: F401  (Ray imports it lazily; fail before any trial starts)
        from ray.air.integrations.mlflow import MLflowLoggerCallback
    except ImportError as exc:
        raise ConfigError("--mlflow needs mlflow: pip install -e '.[mlflow]'") from exc
    if not uri:
        if is_uri(storage):
            raise ConfigError(f"--mlflow without a URI needs local storage, not {storage}; pass --mlflow URI")
        uri = f"sqlite:///{Path(storage, 'mlflow.db').resolve()}"
    require_tracking_server(uri)
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # its database set-up lines
    return MLflowLoggerCallback(tracking_uri=uri, experiment_name=experiment, save_artifact=False)


def require_tracking_server(uri: str, timeout: float = 5.0) -> None:
    """An ``http(s)://`` MLflow tracking URI must answer before any trial starts (MLflow itself retries for
    minutes); any HTTP answer counts, an error status included. Other URIs (sqlite, file...) pass."""
    import urllib.error
    import urllib.request
    if not uri.lower().startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # a server answered
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        reason = getattr(reason, "strerror", None) or str(reason) or type(exc).__name__
        raise ConfigError(f"--mlflow {uri}: no MLflow tracking server answers there ({reason}); start it "
                          "(mlflow server --host HOST --port PORT), fix the URI, or give --mlflow without a URI "
                          "for a local store") from exc


def experiment_exists(storage: str, name: str) -> bool:
    """Whether an experiment folder already holds Tune state (local storage only)."""
    return not is_uri(storage) and Path(storage, name, "tuner.pkl").exists()
