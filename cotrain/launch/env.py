"""What Ray's processes inherit from this one: the console switches (set when ``cotrain.launch`` is
imported, before any ``import ray`` here) and the workers' kernel-pinning variables (``--portable``)."""
from __future__ import annotations

import os
from typing import Any, Optional

from cotrain.portable import worker_env

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


def worker_runtime_env() -> Optional[dict[str, Any]]:
    """Every Ray worker of this session starts with the driver's kernel-pinning variables (``--portable``):
    the libraries read them once, before a worker could set them itself; on a cluster this is the only way."""
    env = worker_env()
    return {"env_vars": env} if env else None
