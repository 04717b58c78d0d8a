"""Helpers for the reliability tests: subprocess runs of the real CLIs, test-local sweeps, Ray PIDs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]


def env(**extra: str) -> dict[str, str]:
    """The test's environment for a CLI subprocess: repo importable, quiet, no stray cluster address."""
    out = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "COTRAIN_FAULT")}
    out.update(PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               PYTHONWARNINGS="ignore", RAY_AIR_NEW_OUTPUT="0", TUNE_GLOBAL_CHECKPOINT_S="1", **extra)
    return out


def write_sweep(folder: Path, cells: list[dict], name: str = "tiny_sweep.py") -> Path:
    """A test-local table script: a tiny Table 7 grid run through ``cotrain.sweep.run_sweep``."""
    script = folder / name
    script.write_text(textwrap.dedent(f"""
        import sys
        from cotrain.sweep import SweepSpec, run_sweep
        SPEC = SweepSpec(script="tiny", table="7", cells={cells!r}, fixed={{"hfd": False, "gamma": 1.0}})
        sys.exit(run_sweep(SPEC))
    """))
    return script


def trial_dirs(experiment: Path) -> list[Path]:
    return sorted(p for p in experiment.glob("*") if p.is_dir() and (p / "params.json").is_file())


def reports(trial_dir: Path) -> list[dict]:
    """Complete result.json lines of one trial (a half-written last line is skipped)."""
    path = trial_dir / "result.json"
    out = []
    for line in (path.read_text().splitlines() if path.is_file() else []):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def cell_of(trial_dir: Path) -> dict:
    params = json.loads((trial_dir / "params.json").read_text())
    return {**params, **params.get("cell", {})}


def wait_for(condition: Callable[[], object], timeout: float, proc: Optional[subprocess.Popen] = None,
             what: str = "condition") -> object:
    """Poll ``condition`` every 0.5 s; fail if it stays false or ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"driver exited ({proc.returncode}) before {what}:\n{_tail(proc)}")
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _tail(proc: subprocess.Popen) -> str:
    log = getattr(proc, "log_path", None)
    return log.read_text()[-3000:] if log and log.is_file() else ""


def descendants(pid: int) -> list:
    """Every live process below ``pid`` (Ray's GCS, raylet, workers, ... started by ray.init)."""
    import psutil
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def alive(pids: list[int]) -> list[int]:
    import psutil
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def launch(args: list[str], log: Path, cwd: Path = REPO, **extra: str) -> subprocess.Popen:
    """Start a CLI as a subprocess; its output goes to ``log`` (a pipe would fill up and block it)."""
    with log.open("w") as handle:
        proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env(**extra), text=True,
                                stdout=handle, stderr=subprocess.STDOUT)
    proc.log_path = log
    return proc
