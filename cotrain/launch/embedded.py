"""Starting the embedded Ray on 127.0.0.1: its dashboard port, one retry of a slow node start-up."""
from __future__ import annotations

import os
import signal
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

from cotrain.errors import ClusterError
from cotrain.launch.env import worker_runtime_env

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
