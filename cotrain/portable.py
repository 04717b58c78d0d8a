"""``portable``: CPU numerics that do not depend on the machine's instruction set or core count.

torch (ATen), oneDNN and MKL each pick their CPU kernels by the instruction set the machine has
(AVX-512 here, AVX2 elsewhere), and the kernels round differently; the number of threads splits
reductions differently too. Pinning the level to AVX2 and the threads to a fixed number gives the
same bits on every x86 machine with AVX2 (README, "Reproducibility"). The libraries read these
variables once, on their first kernel call, so they must be in place before a process computes
anything: Ray's workers get them at start (``ray_session`` passes them on), and the ``--direct``
process sets them before its first tensor operation, or runs the loop in a child process that
starts with them.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Optional, Sequence

PORTABLE_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",          # torch's own vectorised kernels
    "ONEDNN_MAX_CPU_ISA": "AVX2",           # oneDNN's convolutions
    "ONEDNN_DEFAULT_FPMATH_MODE": "STRICT",  # oneDNN never computes fp32 in bf16/tf32 on its own
    "MKL_CBWR": "AVX2",                     # MKL's GEMMs (conditional numerical reproducibility)
}
PINNED_CAPABILITY = "AVX2"  # what torch.backends.cpu.get_cpu_capability() reports once pinned
PORTABLE_THREADS = 1  # intra-op threads of a portable run unless cpu_threads says otherwise
CHILD_ENV = "COTRAIN_PORTABLE_CHILD"  # set in the child a --direct run restarts in: never restart twice


def pin_this_process() -> bool:
    """Set ``PORTABLE_ENV`` here; True when this process's kernels follow it (nothing had computed yet).

    When torch already chose its kernels, the variables are put back as they were and False is returned.
    """
    before = {k: os.environ.get(k) for k in PORTABLE_ENV}
    os.environ.update(PORTABLE_ENV)
    import torch
    if torch.backends.cpu.get_cpu_capability() == PINNED_CAPABILITY:
        return True
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return False


def threads(cpu_threads: Optional[int], portable: bool, default: Optional[int]) -> Optional[int]:
    """Intra-op threads of a run: ``cpu_threads`` if set, else fixed when portable, else ``default``
    (None: torch's own choice, the machine's cores)."""
    if cpu_threads is not None:
        return cpu_threads
    return PORTABLE_THREADS if portable else default


def pin_driver() -> None:
    """A portable run's driver: the variables go to every process it starts (Ray's workers inherit them,
    see ``worker_env``), whether or not this process could still pin itself."""
    os.environ.update(PORTABLE_ENV)


def worker_env() -> dict[str, str]:
    """The pinning variables set in this (driver) process, for every Ray worker it starts."""
    return {k: os.environ[k] for k in PORTABLE_ENV if k in os.environ}


def rerun_pinned(argv: Sequence[str]) -> int:
    """Run ``python -m cotrain.train ARGV`` again in a child process that starts pinned; its exit code."""
    if os.environ.get(CHILD_ENV):
        raise RuntimeError("portable: the restarted run could not pin its CPU kernels")
    env = {**os.environ, **PORTABLE_ENV, CHILD_ENV: "1"}
    return subprocess.run([sys.executable, "-m", "cotrain.train", *argv], env=env).returncode


def check_pinned(where: str) -> None:
    """Fail when a portable run computes with kernels other than the pinned ones."""
    if not pin_this_process():
        import torch
        raise RuntimeError(f"portable=True but {where} computes with {torch.backends.cpu.get_cpu_capability()} "
                           "kernels: start it with " + " ".join(f"{k}={v}" for k, v in PORTABLE_ENV.items()))
