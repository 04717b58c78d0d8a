"""One long-lived child process that runs cases one after another, each under its own time limit.

The GPU check's start-up (Python, torch, CUDA; Ray and the packing processes when a case first needs
them) is paid once for all cases, not once per case: on an H200 machine a fresh process cost 19-43 s.
The caller's process stays light (no torch), so it can always stop the worker: a case that overruns
its limit has the worker terminated (a Ray session inside shuts down on the SIGTERM) and the next
case starts a fresh one. A case's exception is its result, not the worker's end.

In the worker, ``shared(key, factory)`` enters a context (a Ray session, a pool of trainer
processes) once and keeps it until the worker ends.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from typing import Any

GRACE_S = 20.0  # how long a terminated worker may take to shut its Ray session down before it is killed


class CaseTimeout(Exception):
    """The case ran past its limit; the worker was stopped."""


class CaseFailed(Exception):
    """The case raised (the message is its first line), or the worker died under it."""


class CaseSkipped(Exception):
    """Raised by a case that decides not to run (e.g. 8 trials would not fit the GPU's memory)."""


class _State:
    stack: ExitStack | None = None
    contexts: dict[str, Any] = {}


def shared(key: str, factory: Callable[[], AbstractContextManager]) -> Any:
    """The value of context ``factory()``, entered on first use in this process and kept until it ends."""
    if key not in _State.contexts:
        if _State.stack is None:  # called outside a worker (a test): kept until the interpreter exits
            import atexit
            _State.stack = ExitStack()
            atexit.register(_State.stack.close)
        _State.contexts[key] = _State.stack.enter_context(factory())
    return _State.contexts[key]


def die_with_parent() -> None:
    """Linux: this process gets SIGKILL when its parent dies (no orphaned GPU processes). Elsewhere a no-op."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


def is_shared(key: str) -> bool:
    """Whether ``shared(key, ...)`` has been entered in this process."""
    return key in _State.contexts


def _serve(conn, hello: Callable[[], dict]) -> None:
    """The worker's loop: ``hello()`` first, then ``(fn, args)`` in, ``(status, value)`` out; ``None`` ends it."""
    die_with_parent()
    with ExitStack() as stack:
        _State.stack = stack
        try:
            conn.send(("ok", hello()))
        except Exception as exc:
            conn.send(("failed", one_line(exc)))
            return
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return
            if message is None:
                return
            fn, args = message
            try:
                reply = ("ok", fn(*args))
            except CaseSkipped as exc:
                reply = ("skipped", str(exc))
            except Exception as exc:  # the case's result, not the worker's end
                reply = ("failed", one_line(exc))
            conn.send(reply)


def worker_info() -> dict:
    """What a new worker reports once it is up: its pid."""
    return {"pid": os.getpid()}


class CaseWorker:
    """Runs ``fn(*args)`` in one long-lived spawned process; ``hello()`` runs there first (imports, device)."""

    def __init__(self, hello: Callable[[], dict] = worker_info, start_limit_s: float = 120.0) -> None:
        self.hello, self.start_limit_s = hello, start_limit_s
        self.process: multiprocessing.Process | None = None
        self.conn = None
        self.info: dict = {}
        self.starts: list[float] = []  # seconds each start took

    def start(self, limit_s: float | None = None) -> dict:
        """Start the worker (if it is not running) and wait for its ``hello`` (at most ``limit_s``, default
        ``start_limit_s``); its reply."""
        if self.process is not None and self.process.is_alive():
            return self.info
        limit_s = self.start_limit_s if limit_s is None else limit_s
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        began = time.perf_counter()
        self.process = context.Process(target=_serve, args=(child, self.hello), daemon=False)
        self.process.start()
        child.close()
        status, value = self._reply(limit_s, "starting the worker")
        if status != "ok":
            self.stop()
            raise CaseFailed(f"the worker did not start: {value}")
        self.starts.append(time.perf_counter() - began)
        self.info = value
        return value

    def call(self, fn: Callable, args: tuple, limit_s: float) -> dict:
        """``fn(*args)`` in the worker within ``limit_s``; raises CaseTimeout, CaseFailed or CaseSkipped."""
        self.start()
        self.conn.send((fn, args))
        status, value = self._reply(limit_s, "the case")
        if status == "failed":
            raise CaseFailed(value)
        if status == "skipped":
            raise CaseSkipped(value)
        return value

    def _reply(self, limit_s: float, what: str) -> tuple[str, Any]:
        if not self.conn.poll(limit_s):
            self.stop()
            raise CaseTimeout(f"{what} ran over its {limit_s:.0f} s limit; the worker was stopped")
        try:
            return self.conn.recv()
        except EOFError:
            code = self.process.exitcode if self.process else None
            self.stop()
            raise CaseFailed(f"the worker process died (exit code {code})") from None

    def stop(self, wait_s: float = 1.0) -> None:
        """End the worker: ask it to finish and wait ``wait_s``, then SIGTERM (Ray shuts down), then SIGKILL
        after ``GRACE_S``."""
        if self.process is None:
            return
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(wait_s)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(GRACE_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()
        self.process, self.conn = None, None

    def close(self) -> None:
        """End the worker after its current work: its contexts (Ray, trainer processes) close in order."""
        self.stop(wait_s=GRACE_S)
