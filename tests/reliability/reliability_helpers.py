"""Helpers for the reliability tests: subprocess runs of the real CLIs, test-local sweeps, Ray PIDs."""
from __future__ import annotations

import ipaddress
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
        from cotrain.tables import TableSpec
        TABLE = TableSpec("7", "Sensitivity of α", varies=("alpha",), label_columns=("α",))
        SPEC = SweepSpec(script="tiny", table=TABLE, cells={cells!r}, fixed={{"hfd": False, "gamma": 1.0}})
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


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process, from /proc (Linux)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            out[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            pass
    return out


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (Ray's GCS, raylet, workers, ... started by ray.init)."""
    parents, found, todo = _parents(), [], [pid]
    while todo:
        parent = todo.pop()
        children = [c for c, p in parents.items() if p == parent]
        found += children
        todo += children
    return found


def alive(pids: list[int]) -> list[int]:
    """The pids still running (zombies count as gone)."""
    out = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            out.append(pid)
    return out


def _ip(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    # /proc/net/tcp* stores addresses as 32-bit words in host (little-endian) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words))


def listening(pids: set[int]) -> set[tuple[int, str, int]]:
    """(pid, ip, port) of every TCP LISTEN socket held by ``pids`` (from /proc/net/tcp{,6})."""
    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A":  # LISTEN
                addr, port = cols[1].split(":")
                sockets[cols[9]] = (_ip(addr), int(port, 16))
    found = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").glob("*") if Path(f"/proc/{pid}/fd").is_dir() else []:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            inode = target[len("socket:["):-1] if target.startswith("socket:[") else None
            if inode in sockets:
                found.add((pid, *sockets[inode]))
    return found


def launch(args: list[str], log: Path, cwd: Path = REPO, **extra: str) -> subprocess.Popen:
    """Start a CLI as a subprocess; its output goes to ``log`` (a pipe would fill up and block it)."""
    with log.open("w") as handle:
        proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env(**extra), text=True,
                                stdout=handle, stderr=subprocess.STDOUT)
    proc.log_path = log
    return proc
