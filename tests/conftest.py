"""Shared fixtures: the repository root and one tiny real sweep (Ray Tune + TorchTrainer) per test run."""
from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import pytest

if TYPE_CHECKING:
    from cotrain.models import Student

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config) -> None:
    """Every test run gets its own Ray temp dir, inherited by the scripts it starts.

    Ray records the running cluster's address under it, and a ``ray.init()`` elsewhere would
    otherwise join (or wait minutes for) a cluster that another run started or left behind.
    The path is short because Ray's unix socket paths must stay under ~107 characters.
    """
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    # Two xdist workers, each starting torch processes and Ray trials, share the machine's cores: OpenMP
    # threads that spin while they wait then burn the CPU the other processes need (two benchmark smoke
    # runs at once on 2 cores: 163 CPU-s spinning, 52 passive; the fast tier 368 -> 237 CPU-s). Waiting
    # threads sleep instead; results are the same bits (only the wait policy changes).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# Seconds each test took (setup + call + teardown; tests under 0.5 s are left out), which orders the
# groups; ``--store-durations`` updates it with the tests that ran.
DURATIONS = Path(__file__).with_name("durations.json")


def pytest_addoption(parser) -> None:
    parser.addoption("--store-durations", action="store_true",
                     help=f"record each test's seconds in tests/{DURATIONS.name} (orders the xdist groups)")


def _test_id(nodeid: str) -> str:
    return nodeid.rsplit("@", 1)[0]  # without xdist's "@group"


def _stored_durations() -> dict[str, float]:
    return json.loads(DURATIONS.read_text()) if DURATIONS.is_file() else {}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(config, items) -> None:
    """Group tests for the two xdist workers (pyproject's addopts), order the groups, and deselect the heaviest.

    A group runs on one worker, so a fixture shared by a module (or the session's α sweep) is built
    once: each test's group is its module, or ``alpha_sweep`` for the tests reading that sweep.
    Groups are handed out longest first (the sum of their tests' seconds in ``durations.json``): in file
    order the two longest came last and one worker ran alone for the full suite's last 3.5 minutes.
    The largest encoders run only when ``-m`` names ``heavy``, so ``-m "not slow"`` stays the fast tier.
    """
    seconds = _stored_durations()
    groups, length = {}, {}
    for item in items:
        shared = "alpha_sweep_run" in getattr(item, "fixturenames", ())  # alpha_sweep's users too (it needs it)
        groups[item] = "alpha_sweep" if shared else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(groups[item]))
        length[groups[item]] = length.get(groups[item], 0.0) + seconds.get(item.nodeid, 0.0)
    items.sort(key=lambda item: -length[groups[item]])  # stable: file order within a group and among equals
    if "heavy" in (config.option.markexpr or ""):
        return
    heavy = [item for item in items if "heavy" in item.keywords]
    if heavy:
        config.hook.pytest_deselected(items=heavy)
        items[:] = [item for item in items if "heavy" not in item.keywords]


_measured: dict[str, float] = {}


def pytest_runtest_logreport(report) -> None:
    """Sums each test's phases (in the xdist controller, from every worker)."""
    test = _test_id(report.nodeid)
    _measured[test] = _measured.get(test, 0.0) + report.duration


def pytest_sessionfinish(session) -> None:
    if session.config.getoption("store_durations") and not hasattr(session.config, "workerinput"):
        kept = _stored_durations()
        kept.update({test: round(s, 1) for test, s in _measured.items()})
        DURATIONS.write_text(json.dumps({t: s for t, s in sorted(kept.items()) if s >= 0.5}, indent=0) + "\n")


def pytest_unconfigure(config) -> None:
    shutil.rmtree(os.environ.get("RAY_TMPDIR", ""), ignore_errors=True)


@pytest.fixture(autouse=True)
def _environment_restored():
    """Whatever a test (or code it runs in this process) sets in ``os.environ`` is undone after it: a
    ``--portable`` run pins its driver through the environment, and the scripts later tests start
    inherit it (a leaked pin once made two unpinned Ray runs compute with AVX2 kernels)."""
    before = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(before)


def run_script(args: list[str], cwd: Path, timeout: float = 600,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a repository script with this interpreter; output captured as text."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def run_main(argv: list[str], monkeypatch) -> int:
    """``python ARGV`` (a script path or ``-m module``) run in this process; its exit code. Warnings are
    ignored, as ``PYTHONWARNINGS=ignore`` does for a subprocess."""
    module = argv[1] if argv[0] == "-m" else None
    monkeypatch.setattr(sys, "argv", [module, *argv[2:]] if module else [str(argv[0]), *argv[1:]])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if module:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(str(REPO / argv[0]), run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return 0


# The tiny config the determinism checks run direct and through Ray: seed 0, 2 epochs of 1 step, one thread.
TINY_RUN = ["--preset", "smoke", "--seed", "0", "--epochs", "2", "--max-train-steps", "1", "--cpu-threads", "1"]
TIMING = {"epoch_time_s", "step_time_s", "data_wait_frac"}  # wall-clock, never equal


def numbers(reports: list[dict], like: list[dict]) -> list[dict]:
    """What the training loop computed, per epoch: the metrics of ``like`` (a direct run's) but the timings."""
    keys = [k for k in like[0] if k not in TIMING]
    return [{k: report.get(k) for k in keys} for report in reports]


@pytest.fixture
def ray_tmpdir():
    """A Ray temp dir of the test's own for the scripts it starts (``RAY_TMPDIR``), removed afterwards. Short:
    Ray's unix socket paths must stay under ~107 characters."""
    path = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@dataclass(frozen=True)
class SweepRun:
    """A finished sweep: its storage folder and what its console showed (ANSI colours removed)."""

    storage: Path
    console: str


# The α sweep's rows (Vanilla and α = 0.1, the two at once): a trial through Ray costs ~35 CPU-s; the
# table's skipped rows are exercised as well as with all six.
ALPHA_SWEEP_ROWS = "1,2"
ALPHA_SWEEP_CELLS = [("ours", 0.1), ("vanilla", 1.0)]
ALPHA_SWEEP_TRIALS = len(ALPHA_SWEEP_CELLS)


@pytest.fixture(scope="session")
def alpha_sweep_run(tmp_path_factory) -> SweepRun:
    """The README's main job at smoke size: ``sweeps/alpha_sensitivity.py`` through real Ray, with its
    default console and ``--mlflow`` (one sweep serves the table, resume, console and tracking tests).

    Experiment ``alpha`` (``ALPHA_SWEEP_TRIALS``: Vanilla and α = 0.1, ``--rows``) in ``storage``;
    MLflow's store is ``storage/mlflow.db``.
    """
    storage = tmp_path_factory.mktemp("sweeps")
    done = run_script([str(REPO / "sweeps" / "alpha_sensitivity.py"), "--preset", "smoke", "--rows", ALPHA_SWEEP_ROWS,
                       "--storage", str(storage), "--name", "alpha", "--mlflow"], cwd=storage)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return SweepRun(storage, re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr))


@pytest.fixture(scope="session")
def alpha_sweep(alpha_sweep_run: SweepRun) -> Path:
    """The storage folder of :func:`alpha_sweep_run`."""
    return alpha_sweep_run.storage


# Students built once per session (MiT-B3..B5 take seconds each to initialise on CPU); tests/models and
# tests/test_pair.py share them.
@pytest.fixture(scope="session")
def student() -> Callable[..., Student]:
    """``student(kind, name, num_classes=3)``: a cached ``weights=None`` student (callers zero its grads)."""
    import torch

    from cotrain.models import build_student

    cache: dict[tuple[str, str, int], Student] = {}

    def get(kind: str, name: str, num_classes: int = 3) -> Student:
        key = (kind, name, num_classes)
        if key not in cache:
            torch.manual_seed(0)
            cache[key] = build_student(kind, name, num_classes, weights=None)
        return cache[key]

    return get
