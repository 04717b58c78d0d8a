"""Bad input to the real CLIs: one clear line on stderr, exit code 2, nothing half-written, no Ray started.

Each case runs the command's ``__main__`` in this process (as ``python -m`` / ``python script.py``
would: argv, working directory, exit code, stderr), which keeps the 49 cases to seconds; a case
that needs its own environment (``extra_env``), and one case per entry point, run as a real
subprocess. ``RAY_ADDRESS`` points at a closed port, so a case that wrongly reached Ray fails fast.
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

from tests.conftest import run_main

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
    subprocess: bool = False  # run as a real subprocess even without extra_env


def _checkpoint(tmp: Path) -> None:
    """A real-looking checkpoint, a corrupt one, a truncated one, and one pickling a custom class."""
    state = {"pair": {"w": torch.zeros(1000)}, "config": {}, "num_classes": 8}
    torch.save(state, tmp / "good.pt")
    (tmp / "corrupt.pt").write_bytes(b"this is not a checkpoint" * 10)
    data = (tmp / "good.pt").read_bytes()
    (tmp / "truncated.pt").write_bytes(data[: len(data) // 2])


class Payload:
    """A pickled object that is no tensor: ``torch.load(weights_only=True)`` must refuse it."""


def _weights(tmp: Path) -> None:
    """``--weights`` files that are not state dicts of the students: a pickled object, other keys."""
    torch.save({"model": Payload()}, tmp / "refused.pt")
    torch.save({"not.a.layer": torch.zeros(3)}, tmp / "other-keys.pt")


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


def _tiny_builtin(tmp: Path) -> list[Path]:
    """A 2-train, 1-val built-in dataset under ``tmp/data``; returns its train masks."""
    from cotrain.data import generate_builtin
    generate_builtin(tmp / "data", num_train=2, num_val=1, size=64)
    return sorted((tmp / "data").rglob("SegmentationClass/*.png"))


def _set_mask(path: Path, labels: np.ndarray) -> None:
    with Image.open(path) as old:
        palette = old.getpalette()
    mask = Image.fromarray(labels.astype(np.uint8), mode="P")
    mask.putpalette(palette)
    mask.save(path)


def _stretched_mask(tmp: Path) -> None:
    _set_mask(_tiny_builtin(tmp)[0], np.zeros((48, 64)))  # image 64x64, mask 64 wide x 48 high


def _label_37(tmp: Path) -> None:
    _set_mask(_tiny_builtin(tmp)[0], np.full((64, 64), 37))


def _truncated_image(tmp: Path) -> None:
    _tiny_builtin(tmp)
    for image in (tmp / "data").rglob("JPEGImages/*.jpg"):  # headers stay readable, pixels do not
        data = image.read_bytes()
        image.write_bytes(data[: len(data) * 2 // 3])


def _non_utf8_yaml(tmp: Path) -> None:
    (tmp / "latin1.yaml").write_bytes("alpha: 1.0\n# réglé\n".encode("latin-1"))


def _resumable(tmp: Path) -> None:
    """A run ``R`` (smoke, alpha 1) as ``--resume`` finds it: its config.yaml and Tune state."""
    import yaml

    from cotrain.config import resolve
    (tmp / "out" / "R").mkdir(parents=True)
    cfg = resolve("smoke", overrides={"out": str(tmp / "out"), "name": "R"})
    (tmp / "out" / "R" / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    (tmp / "out" / "R" / "tuner.pkl").write_bytes(b"")


def _under_file(tmp: Path) -> None:
    (tmp / "a-file").write_text("not a folder")


def _existing(tmp: Path) -> None:
    (tmp / "out" / "x").mkdir(parents=True)
    (tmp / "out" / "x" / "tuner.pkl").write_bytes(b"")


def _half_written(tmp: Path) -> None:
    """A Table 7 experiment whose only trial died mid-write (truncated last result.json line)."""
    trial = tmp / "half" / "alpha" / "trial_00000"
    trial.mkdir(parents=True)
    from cotrain.tables import TableSpec
    layout = TableSpec("7", "Sensitivity of α", varies=("alpha",), label_columns=("α",)).to_json()
    config = {"table": "7", "layout": layout, "sweep": "alpha", "method": "ours", "alpha": 0.5, "epochs": 2,
              "seed": 0, "cnn": "mobilenet_v2", "vit": "mit_b0", "dataset": "builtin", "preset": "smoke"}
    (trial / "params.json").write_text(json.dumps(config))
    line = json.dumps({"epoch": 1, "miou_cnn": 10.0, "miou_vit": 9.0, "trial_id": "abcde_00000", "config": config})
    (trial / "result.json").write_text(line + "\n" + line[:40])
    (trial / "params.pkl").write_bytes(b"\x80\x04crefusing\nunpickle\n.")  # must never be opened


CASES = [
    Case("negative-alpha", [*TRAIN, "--alpha", "-1"], "alpha=-1.0 is invalid", subprocess=True),
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
    Case("search-resume-without-name", ["sweeps/search.py", "--preset", "smoke", "--resume"], "--resume needs --name",
         out_flag="--storage"),
    Case("train-resume-without-name", [*TRAIN, "--resume"], "--resume needs --name"),
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
    Case("seeds-0", [*ALPHA, "--seeds", "0"], "--seeds 0 is invalid", out_flag="--storage", subprocess=True),
    Case("pair-badformat", [*ALPHA, "--pair", "badformat"], "--pair 'badformat' is invalid", out_flag="--storage"),
    Case("unknown-flag", [*TRAIN, "--alpah", "1"], "unrecognized arguments"),
    Case("alpha-not-a-number", [*TRAIN, "--alpha", "lots"], "invalid"),
    Case("tables-missing-results", [*TABLES, "--results", "/nonexistent"], "no such directory", out_flag=None,
         subprocess=True),
    Case("tables-format-xml", [*TABLES, "--results", "{tmp}", "--format", "xml"], "invalid choice", out_flag=None),
    Case("tables-empty-results", [*TABLES, "--results", "{tmp}"], "holds no trial folders", out_flag=None),
    # issue 15: found by trying the CLIs as a hostile user would
    Case("resume-with-other-config", [*TRAIN, "--name", "R", "--resume", "--alpha", "5", "--beta", "0.5",
                                      "--out", "{tmp}/out"], "alpha=1.0 (now 5.0), beta=0.1 (now 0.5)", _resumable),
    Case("mask-of-another-size", [*TRAIN, "--data-root", "{tmp}/data", "--direct"],
         "train_00000.png: mask is 64x48 (WxH), its image", _stretched_mask),
    # found while reading the data, mid-run: the run's folder stays (resumable once the data is fixed)
    Case("label-out-of-range", [*TRAIN, "--data-root", "{tmp}/data", "--direct", "--out", "{tmp}/runs"],
         "train_00000.png: label value 37 is outside 0..7 and 255", _label_37, out_flag=None, max_seconds=120),
    Case("truncated-image", [*TRAIN, "--data-root", "{tmp}/data", "--direct", "--out", "{tmp}/runs"],
         ".jpg: cannot be decoded (OSError: image file is truncated", _truncated_image, out_flag=None,
         max_seconds=120),
    Case("direct-resume-missing-run", [*TRAIN, "--direct", "--resume", "--name", "ghost"], "no experiment 'ghost'"),
    Case("batch-larger-than-train-set", [*TRAIN, "--batch-size", "1000"],
         "batch_size=1000 is invalid: larger than the 300 training images"),
    Case("non-utf8-yaml", [*TRAIN, "--config", "{tmp}/latin1.yaml"], "is not UTF-8 text", _non_utf8_yaml),
    Case("seed-1e20", [*TRAIN, "--seed", "1e20"], "invalid int value: '1e20'"),
    Case("seed-beyond-2**32", [*TRAIN, "--seed", "100000000000000000000"], "seed=100000000000000000000 is invalid"),
    Case("tables-out-is-a-file", [*TABLES, "--paper", "--out", "{tmp}/a-file"], "is a file", _under_file,
         out_flag=None),
    Case("data-check-unknown-split", ["-m", "cotrain.data", "check", "--dataset", "builtin", "--split", "foo"],
         "--split 'foo' is invalid", out_flag=None, subprocess=True),
    Case("name-with-parent", [*TRAIN, "--name", "../x"], "name='../x' is invalid: must be a plain folder name"),
    Case("name-absolute", [*ALPHA, "--name", "/tmp/x"], "name='/tmp/x' is invalid", out_flag="--storage"),
    Case("imagenet-weights-offline-uncached", [*TRAIN, "--weights", "imagenet"], "python -m cotrain.weights fetch",
         extra_env={"HF_HUB_OFFLINE": "1", "COTRAIN_WEIGHTS_CACHE": "/nonexistent/weights"}),
    # issue 25: a --weights file that is not a state dict failed in the run (traceback, a folder left)
    Case("weights-refused-pickle", [*TRAIN, "--direct", "--weights", "{tmp}/refused.pt"],
         "is not a readable state dict (UnpicklingError; only tensors and plain containers are read", _weights),
    Case("weights-other-keys", [*TRAIN, "--weights", "{tmp}/other-keys.pt"],
         "matches neither the MobileNetV2Encoder encoder nor the whole model (keys differ)", _weights),
    *([] if torch.cuda.is_available() else
      [Case("device-cuda-without-cuda", [*TRAIN, "--device", "cuda"], "device='cuda' is invalid")]),
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


def _in_process(argv: list[str], monkeypatch, capsys) -> subprocess.CompletedProcess:
    """Run ``python ARGV``'s ``__main__`` here: same argv, working directory and exit code, stderr captured."""
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    capsys.readouterr()
    code = run_main(argv, monkeypatch)
    out = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, out.out, out.err)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_one_line_and_exit_2(case: Case, tmp_path: Path, monkeypatch, capsys):
    if case.setup:
        case.setup(tmp_path)
    before = {p.name for p in (tmp_path / "out").iterdir()} if (tmp_path / "out").is_dir() else set()
    start = time.monotonic()
    if case.subprocess or case.extra_env:
        done = subprocess.run([sys.executable, *_argv(case, tmp_path)], cwd=REPO, capture_output=True, text=True,
                              timeout=120, env=env(**{"RAY_ADDRESS": "127.0.0.1:1", **case.extra_env}))
    else:
        done = _in_process(_argv(case, tmp_path), monkeypatch, capsys)
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
    """``check`` prints its report (each faulty file, then a count per kind) on stdout and exits 2."""
    _bad_labels(tmp_path)
    done = subprocess.run([sys.executable, "-m", "cotrain.data", "check", "--dataset", "builtin", "--root",
                           str(tmp_path / "labels")], cwd=REPO, capture_output=True, text=True, timeout=120, env=env())
    assert done.returncode == 2, done.stdout + done.stderr
    problems = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(problems) == 2 and problems[1].startswith("bad label values: 1 file(s)"), done.stdout
    assert "label value 50 is outside 0..7 and 255" in problems[0]


def test_data_check_names_every_file_with_its_reason(tmp_path: Path):
    """Every faulty file is printed (none hidden behind "..."), a size mismatch under the mask with both
    sizes, an RGB mask with why it is refused."""
    from cotrain.data import generate_builtin
    root = generate_builtin(tmp_path / "data", num_train=9, num_val=1, size=64)
    masks = sorted((root / "SegmentationClass").glob("train_*.png"))
    for mask in masks[:7]:
        _set_mask(mask, np.full((64, 64), 40))
    Image.new("RGB", (64, 64)).save(masks[7])
    _set_mask(masks[8], np.zeros((32, 64)))
    done = subprocess.run([sys.executable, "-m", "cotrain.data", "check", "--dataset", "builtin", "--root", str(root)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env=env())
    assert done.returncode == 2, done.stderr
    out = done.stdout
    for mask in masks[:7]:
        assert f"bad label values: {mask}: label value 40 is outside 0..7 and 255" in out
    assert f"unreadable mask: {masks[7]}: label image has mode RGB" in out
    image = root / "JPEGImages" / masks[8].with_suffix(".jpg").name
    assert f"size mismatch: {masks[8]}: mask is 64x32 (WxH), its image {image} is 64x64" in out
    assert "..." not in out


def test_half_written_results_show_as_unfinished(tmp_path: Path):
    """A trial killed mid-write: the table still renders (exit 0), the cell is not a number, no pickle opened."""
    _half_written(tmp_path)
    done = subprocess.run([sys.executable, *TABLES, "--results", str(tmp_path / "half"), "--no-plots"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env=env())
    assert done.returncode == 0, done.stderr
    assert "1 unfinished" in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("|") and "0.5" in line)
    assert "10.0" not in row and "—" in row, row
