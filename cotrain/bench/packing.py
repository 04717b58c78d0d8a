"""Several trials on one GPU: trainer processes started once, then 1, 2, 4... of them training side by side.

What ``--gpus-per-trial 1/k`` gives a sweep is k trainer processes sharing one device. ``TrainerPool``
starts its processes once (torch and CUDA imported in parallel, paid once for every level), and for
each level builds the real run in k of them (``build_run``: data, loader workers, pair, optimisers),
warms it up, then lets all k train for the same wall-clock seconds with the real step. Per trial: steps,
images, the share of time spent waiting for data (a loader that cannot keep up shows here), and its peak
memory (CUDA: the allocator's reserved peak, what packing must fit; CPU: the process's RSS high-water mark).
"""
from __future__ import annotations

import gc
import multiprocessing
import resource
import time
from typing import Any

from cotrain.bench.worker import die_with_parent, one_line

BUILD_LIMIT_S = 300.0


def _trainer(conn, device: str) -> None:
    """A trainer process: imports once, then builds, trains for a while, and frees, on command."""
    die_with_parent()
    import torch  # noqa: F401  (imported now, in parallel with the other trainers)

    from cotrain.engine import loop  # noqa: F401
    if device == "cuda":
        torch.cuda.init()
        torch.zeros(1, device="cuda")  # the CUDA context, now
    conn.send(("ok", None))
    state: dict[str, Any] = {}
    while True:
        message = conn.recv()
        if message is None:
            return
        command, args = message
        try:
            conn.send(("ok", _COMMANDS[command](state, *args)))
        except Exception as exc:
            conn.send(("failed", one_line(exc)))


def _build(state: dict, cfg_dict: dict, warmup: int) -> None:
    from cotrain.config import TrainConfig
    from cotrain.engine.loop import build_run
    run = build_run(TrainConfig.from_dict(cfg_dict))
    run.model.train()
    state["run"], state["batches"] = run, _endless(run.train_loader)
    for _ in range(warmup):
        _step(run, state["batches"])
    _sync(run)


def _train(state: dict, seconds: float) -> dict:
    """Train for ``seconds`` of wall clock; steps, images, data-wait share and peak memory."""
    import torch
    run, batches = state["run"], state["batches"]
    steps, waited, start = 0, 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        waited += _step(run, batches)
        steps += 1
    _sync(run)
    elapsed = time.perf_counter() - start
    if run.device.type == "cuda":
        peak = torch.cuda.max_memory_reserved() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"steps": steps, "seconds": elapsed, "images": steps * run.cfg.batch_size,
            "data_wait_frac": waited / elapsed, "peak_mem_mb": peak, "step_s": elapsed / max(steps, 1)}


def _free(state: dict) -> None:
    import torch
    state.clear()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


_COMMANDS = {"build": _build, "train": _train, "free": _free}


def _endless(loader):
    while True:
        yield from loader


def _step(run, batches) -> float:
    """One training step on the loader's next batch; the seconds spent waiting for that batch."""
    from cotrain.engine.loop import training_step
    start = time.perf_counter()
    images, target = next(batches)
    waited = time.perf_counter() - start
    training_step(run, images, target)
    return waited


def _sync(run) -> None:
    import torch
    if run.device.type == "cuda":
        torch.cuda.synchronize()


class TrainerPool:
    """``size`` trainer processes, started at once; a context manager that ends them."""

    def __init__(self, size: int, device: str, start_limit_s: float = 300.0) -> None:
        context = multiprocessing.get_context("spawn")
        self.device, self.processes, self.conns = device, [], []
        began = time.perf_counter()
        for _ in range(size):
            parent, child = context.Pipe()
            process = context.Process(target=_trainer, args=(child, device), daemon=False)
            process.start()
            child.close()
            self.processes.append(process)
            self.conns.append(parent)
        self._gather(self.conns, start_limit_s, "start")
        self.start_s = time.perf_counter() - began
        self.peak_mem_mb: dict[int, float] = {}  # trials per GPU -> the largest trial's peak

    def measure(self, cfg, trials: int, seconds: float, warmup: int = 3) -> list[dict]:
        """``trials`` copies of ``cfg`` (seeds 0..n-1) built, warmed up, then trained side by side for ``seconds``."""
        if trials > len(self.conns):
            raise ValueError(f"{trials} trials, but the pool holds {len(self.conns)} processes")
        conns = self.conns[:trials]
        for index, conn in enumerate(conns):
            conn.send(("build", (cfg.replace(seed=index).to_dict(), warmup)))
        self._gather(conns, BUILD_LIMIT_S, "build")
        for conn in conns:
            conn.send(("train", (seconds,)))
        try:
            results = self._gather(conns, seconds + BUILD_LIMIT_S, "train")
        finally:
            for conn in conns:
                conn.send(("free", ()))
            self._gather(conns, 60.0, "free")
        self.peak_mem_mb[trials] = max(r["peak_mem_mb"] for r in results)
        return results

    def _gather(self, conns: list, limit_s: float, what: str) -> list:
        deadline = time.perf_counter() + limit_s
        out = []
        for conn in conns:
            if not conn.poll(max(deadline - time.perf_counter(), 0.0)):
                raise TimeoutError(f"trainer processes: {what} took over {limit_s:.0f} s")
            status, value = conn.recv()
            if status != "ok":
                raise RuntimeError(f"a trainer process failed to {what}: {value}")
            out.append(value)
        return out

    def __enter__(self) -> TrainerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
        for process in self.processes:
            process.join(10.0)
            if process.is_alive():
                process.kill()
                process.join()
        self.processes, self.conns = [], []


def summarise(results: list[dict], batch: int, images_per_epoch: int) -> dict:
    """One row for a level: the trials' summed images/s and trial-epochs per hour, their mean step and data
    wait, and the largest trial's peak memory."""
    rate = sum(r["images"] / r["seconds"] for r in results)
    return {"trials": len(results), "images_per_s": rate, "trial_epochs_per_h": 3600 * rate / images_per_epoch,
            "step_s": sum(r["step_s"] for r in results) / len(results),
            "data_wait_frac": sum(r["data_wait_frac"] for r in results) / len(results),
            "peak_mem_mb": max(r["peak_mem_mb"] for r in results)}
