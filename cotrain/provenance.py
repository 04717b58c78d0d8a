"""Where a result came from: the code, the packages, the CPU kernels and GPU, the data and the plugins.

Collected once per run start in the process that trains (a Ray Train worker, or the ``--direct``
process) and recorded with the run's first report as ``provenance`` (JSON text, so that trackers see
one value): Tune writes it into the trial's ``result.json``, a direct run into ``metrics.jsonl`` and
``provenance.json``. ``analysis/provenance.py`` reads it back without Ray. Every probe is cheap and
answers None rather than fail: a missing record must never stop a run.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Optional

from cotrain.estimate import resolved_device
from cotrain.plugins import plugin_modules
from cotrain.portable import worker_env

KEY = "provenance"  # the report key (and the direct run's provenance.json)
PACKAGES = ("torch", "torchvision", "timm", "segmentation_models_pytorch", "ray", "optuna")
SOURCE_ROOT = Path(__file__).resolve().parents[1]  # the folder holding the cotrain package
PROBE_TIMEOUT_S = 10.0

Report = Callable[[dict, Optional[str]], None]


def collect(cfg: Any) -> dict[str, Any]:
    """This process's provenance for run ``cfg`` (call once torch runs at the run's settings)."""
    import torch
    commit, dirty = git_state(str(SOURCE_ROOT))
    files, digest = data_fingerprint(cfg)
    return {
        "git_commit": commit, "git_dirty": dirty,
        "versions": {name: _version(name) for name in PACKAGES}, "python": platform.python_version(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch_threads": torch.get_num_threads(),
        "cpu_model": cpu_model(), "device": resolved_device(cfg.device), **gpu(torch),
        "pinned_env": worker_env(),
        "data_files": files, "data_sha256": digest, "plugins": plugin_modules(),
    }


def first_report_carries(report: Report, cfg: Any) -> Report:
    """``report`` whose first call also carries this process's provenance (once per run start)."""
    sent = False

    def wrapped(metrics: dict, folder: Optional[str]) -> None:
        nonlocal sent
        if not sent:
            metrics = {**metrics, KEY: json.dumps(collect(cfg), sort_keys=True)}
            sent = True
        report(metrics, folder)
    return wrapped


def parse(value: Any) -> Optional[dict[str, Any]]:
    """A recorded provenance (JSON text, or already a dict) as a dict; None when absent or unreadable."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


@functools.lru_cache(maxsize=None)
def git_state(folder: str) -> tuple[Optional[str], Optional[bool]]:
    """(commit, dirty) of the git checkout holding ``folder``; (None, None) when it is not one.

    Dirty: a tracked file differs from the commit (untracked files such as results do not count).
    """
    def git(*args: str) -> Optional[str]:
        try:
            done = subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True,
                                  timeout=PROBE_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != Path(folder).resolve():  # e.g. installed inside another repo
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "HEAD"), None if status is None else bool(status)


def data_fingerprint(cfg: Any) -> tuple[Optional[int], Optional[str]]:
    """(file count, sha256) of the run's dataset root; (None, None) when it cannot be read."""
    try:
        from cotrain.data import get_spec
        spec = get_spec(cfg.dataset)
        root = spec.ensure_root(cfg.data_root) if spec.ensure_root else cfg.data_root
        return tree_fingerprint(str(Path(root).expanduser().resolve()))
    except Exception:  # provenance never stops a run
        return None, None


@functools.lru_cache(maxsize=None)
def tree_fingerprint(root: str) -> tuple[int, str]:
    """(file count, sha256 of the sorted ``relative/path size`` lines) of every file under ``root``.

    Names and sizes only (no contents): cheap on a large dataset, and a re-encoded or regenerated
    file usually changes its size. Cached per process.
    """
    lines = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in files:
            path = os.path.join(folder, name)
            try:
                size = os.stat(path).st_size
            except OSError:
                continue
            lines.append(f"{os.path.relpath(path, root)} {size}")
    lines.sort()
    return len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()


def cpu_model() -> Optional[str]:
    """The CPU's model name (``/proc/cpuinfo``; the platform's answer elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def gpu(torch: Any) -> dict[str, Any]:
    """GPU model, NVIDIA driver and CUDA runtime, when CUDA is available; empty otherwise."""
    if not torch.cuda.is_available():
        return {}
    return {"gpu": torch.cuda.get_device_name(0), "gpu_driver": _nvidia_driver(), "cuda": torch.version.cuda}


def _nvidia_driver() -> Optional[str]:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.strip().splitlines()
    return lines[0].strip() if done.returncode == 0 and lines else None


def _version(name: str) -> Optional[str]:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        module = sys.modules.get(name)
        return getattr(module, "__version__", None)
