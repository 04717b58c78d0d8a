"""Bad input to the real CLIs: one clear line on stderr, exit code 2, nothing half-written, no Ray started.

Each case runs the command as a subprocess (what a user types), with ``RAY_ADDRESS`` pointing
at a closed port so that a case which wrongly reached Ray would fail fast instead of starting one.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest
import torch
from PIL import Image

from reliability_helpers import REPO, env

TRAIN = ["-m", "cotrain.train", "--preset", "smoke"]
ALPHA = ["sweeps/alpha_sensitivity.py", "--preset", "smoke"]
TABLES = ["analysis/make_tables.py"]


@dataclass(frozen=True)
class Case:
    """One bad input: the command (``{tmp}``/``{out}`` filled in), what the one line must say."""

    id: str
    argv: list[str]
    says: str
    setup: Optional[Callable[[Path], None]] = None
    out_flag: Optional[str] = "--out"  # where the command would write (must gain no experiment folder)
    extra_env: dict = field(default_factory=dict)
    max_seconds: float = 60


def _checkpoint(tmp: Path) -> None:
    """A real-looking checkpoint, a corrupt one, a truncated one, and one pickling a custom class."""
    state = {"pair": {"w": torch.zeros(1000)}, "config": {}, "num_classes": 8}
    torch.save(state, tmp / "good.pt")
    (tmp / "corrupt.pt").write_bytes(b"this is not a checkpoint" * 10)
    data = (tmp / "good.pt").read_bytes()
    (tmp / "truncated.pt").write_bytes(data[: len(data) // 2])


def _yaml(tmp: Path) -> None:
    (tmp / "unknown.yaml").write_text("alpha: 1.0\nalphaa: 2.0\n")
    (tmp / "invalid.yaml").write_text("alpha: [1.0\nbeta: : 2\n")


def _bad_labels(tmp: Path) -> None:
    subprocess.run([sys.executable, "-m", "cotrain.data", "generate-builtin", "--root", str(tmp / "labels"),
                    "--num-train", "2", "--num-val", "1", "--size", "64"], check=True, env=env(), cwd=REPO,
                   capture_output=True)
    mask = sorted((tmp / "labels").rglob("SegmentationClass/*.png"))[0]
    image = Image.open(mask)
    bad = Image.fromarray(np.full((image.height, image.width), 50, dtype=np.uint8), mode="P")
    bad.putpalette(image.getpalette())
    bad.save(mask)


def _under_file(tmp: Path) -> None:
    (tmp / "a-file").write_text("not a folder")


def _existing(tmp: Path) -> None:
    (tmp / "out" / "x").mkdir(parents=True)
    (tmp / "out" / "x" / "tuner.pkl").write_bytes(b"")


def _half_written(tmp: Path) -> None:
    """A Table 7 experiment whose only trial died mid-write (truncated last result.json line)."""
    trial = tmp / "half" / "alpha" / "trial_00000"
    trial.mkdir(parents=True)
    config = {"table": "7", "sweep": "alpha", "method": "ours", "alpha": 0.5, "epochs": 2, "seed": 0,
              "cnn": "mobilenet_v2", "vit": "mit_b0", "dataset": "builtin", "preset": "smoke"}
    (trial / "params.json").write_text(json.dumps(config))
    line = json.dumps({"epoch": 1, "miou_cnn": 10.0, "miou_vit": 9.0, "trial_id": "abcde_00000", "config": config})
    (trial / "result.json").write_text(line + "\n" + line[:40])
    (trial / "params.pkl").write_bytes(b"\x80\x04crefusing\nunpickle\n.")  # must never be opened


CASES = [
    Case("negative-alpha", [*TRAIN, "--alpha", "-1"], "alpha=-1.0 is invalid"),
    Case("negative-beta", [*TRAIN, "--beta", "-0.5"], "beta=-0.5 is invalid"),
    Case("negative-gamma", [*ALPHA, "--set", "gamma=-1"], "gamma=-1", out_flag="--storage"),
    Case("temperature-0", [*TRAIN, "--temperature", "0"], "temperature=0.0 is invalid"),
    Case("unknown-encoder", [*TRAIN, "--cnn", "resnet9000"], "cnn='resnet9000' is invalid"),
    Case("unknown-method", [*TRAIN, "--method", "magic"], "method='magic' is invalid"),
    Case("unknown-dataset", [*TRAIN, "--dataset", "imagenet"], "dataset='imagenet' is invalid"),
    Case("num-classes-contradicts-dataset", [*TRAIN, "--num-classes", "5"], "num_classes"),
    Case("num-classes-1", [*TRAIN, "--num-classes", "1"], "num_classes=1 is invalid"),
    Case("corrupt-teacher", [*TRAIN, "--method", "offline_kd", "--teacher-vit", "{tmp}/corrupt.pt"],
         "corrupt or truncated", _checkpoint),
    Case("truncated-teacher", [*TRAIN, "--method", "offline_kd", "--teacher-vit", "{tmp}/truncated.pt"],
         "corrupt or truncated", _checkpoint),
    Case("missing-teacher", [*TRAIN, "--method", "offline_kd", "--teacher-cnn", "{tmp}/nowhere.pt"],
         "does not exist"),
    Case("missing-data-root", [*TRAIN, "--dataset", "voc", "--data-root", "/nonexistent"], "/nonexistent"),
    Case("crop-not-multiple-of-32", [*TRAIN, "--crop-size", "100"], "multiple of 32"),
    Case("crop-16", [*TRAIN, "--crop-size", "16"], "crop_size=16 is invalid"),
    Case("storage-under-a-file", [*ALPHA, "--storage", "{tmp}/a-file/results"], "not writable", _under_file,
         out_flag=None),
    Case("out-under-a-file", [*TRAIN, "--out", "{tmp}/a-file/results"], "not writable", _under_file, out_flag=None),
    Case("cluster-not-running", [*TRAIN, "--cluster"], "no Ray cluster", extra_env={"RAY_ADDRESS": "127.0.0.1:1"},
         max_seconds=30),
    Case("sweep-cluster-not-running", [*ALPHA, "--cluster"], "no Ray cluster", out_flag="--storage",
         extra_env={"RAY_ADDRESS": "127.0.0.1:1"}, max_seconds=30),
    Case("resume-without-name", [*ALPHA, "--resume"], "--resume needs --name", out_flag="--storage"),
    Case("resume-missing-experiment", [*ALPHA, "--resume", "--name", "ghost"], "no experiment 'ghost'",
         out_flag="--storage"),
    Case("train-resume-missing-run", [*TRAIN, "--resume", "--name", "ghost"], "no experiment 'ghost'"),
    Case("existing-experiment", [*ALPHA, "--name", "x", "--storage", "{tmp}/out"], "already exists", _existing,
         out_flag=None),
    Case("train-existing-run", [*TRAIN, "--name", "x", "--out", "{tmp}/out"], "already exists", _existing,
         out_flag=None),
    Case("unknown-yaml-key", [*TRAIN, "--config", "{tmp}/unknown.yaml"], "alphaa", _yaml),
    Case("invalid-yaml", [*TRAIN, "--config", "{tmp}/invalid.yaml"], "not valid YAML", _yaml),
    Case("missing-yaml", [*TRAIN, "--config", "{tmp}/nowhere.yaml"], "does not exist"),
    Case("seeds-0", [*ALPHA, "--seeds", "0"], "--seeds 0 is invalid", out_flag="--storage"),
    Case("pair-badformat", [*ALPHA, "--pair", "badformat"], "--pair 'badformat' is invalid", out_flag="--storage"),
    Case("unknown-flag", [*TRAIN, "--alpah", "1"], "unrecognized arguments"),
    Case("alpha-not-a-number", [*TRAIN, "--alpha", "lots"], "invalid"),
    Case("tables-missing-results", [*TABLES, "--results", "/nonexistent"], "no such directory", out_flag=None),
    Case("tables-format-xml", [*TABLES, "--results", "{tmp}", "--format", "xml"], "invalid choice", out_flag=None),
    Case("tables-empty-results", [*TABLES, "--results", "{tmp}"], "holds no trial folders", out_flag=None),
]


def _argv(case: Case, tmp: Path) -> list[str]:
    argv = [a.replace("{tmp}", str(tmp)) for a in case.argv]
    if case.out_flag and case.out_flag not in argv:
        argv += [case.out_flag, str(tmp / "out")]
    return argv


def _stderr_lines(text: str) -> list[str]:
    """Non-empty stderr lines, Python warnings (and the source line they quote) left out."""
    lines, skip_next = [], False
    for line in text.splitlines():
        if skip_next:
            skip_next = False
            continue
        if "Warning:" in line or line.startswith("warning:"):
            skip_next = line.rstrip().endswith(")") is False and "Warning:" in line
            continue
        if line.strip():
            lines.append(line)
    return lines


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_line_and_exit_2(case: Case, tmp_path: Path):
    if case.setup:
        case.setup(tmp_path)
    before = {p.name for p in (tmp_path / "out").iterdir()} if (tmp_path / "out").is_dir() else set()
    start = time.monotonic()
    done = subprocess.run([sys.executable, *_argv(case, tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=env(**{"RAY_ADDRESS": "127.0.0.1:1", **case.extra_env}))
    seconds = time.monotonic() - start
    lines = _stderr_lines(done.stderr)
    assert done.returncode == 2, f"exit {done.returncode}\nstdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-3000:]}"
    assert len(lines) == 1, done.stderr[-3000:]
    assert case.says in lines[0], lines[0]
    assert "Traceback" not in done.stderr
    assert seconds < case.max_seconds, f"took {seconds:.0f} s"
    after = {p.name for p in (tmp_path / "out").iterdir()} if (tmp_path / "out").is_dir() else set()
    assert after == before, f"left behind: {sorted(after - before)}"


def test_data_check_reports_out_of_range_labels(tmp_path: Path):
    """``check`` prints its report (one line per kind of problem) on stdout and exits 2."""
    _bad_labels(tmp_path)
    done = subprocess.run([sys.executable, "-m", "cotrain.data", "check", "--dataset", "builtin", "--root",
                           str(tmp_path / "labels")], cwd=REPO, capture_output=True, text=True, timeout=120, env=env())
    assert done.returncode == 2, done.stdout + done.stderr
    problems = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(problems) == 1 and problems[0].startswith("bad label values: 1 file(s)"), done.stdout


def test_half_written_results_show_as_unfinished(tmp_path: Path):
    """A trial killed mid-write: the table still renders (exit 0), the cell is not a number, no pickle opened."""
    _half_written(tmp_path)
    done = subprocess.run([sys.executable, *TABLES, "--results", str(tmp_path / "half"), "--no-plots"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env=env())
    assert done.returncode == 0, done.stderr
    assert "1 unfinished" in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("|") and "0.5" in line)
    assert "10.0" not in row and "—" in row, row
