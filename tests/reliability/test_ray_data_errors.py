"""A data error inside a Ray Train worker: one line naming the file, exit 2, and no retries
(Ray Train retries every worker error; a file that cannot be decoded fails the same way each time)."""
from __future__ import annotations

import subprocess
import sys

import pytest
from reliability_helpers import REPO, env, trial_dirs

pytestmark = pytest.mark.slow


def test_undecodable_image_stops_the_ray_run_at_once_naming_the_file(tmp_path):
    from cotrain.data import generate_builtin
    data = generate_builtin(tmp_path / "data", num_train=2, num_val=1, size=64)
    for image in data.rglob("JPEGImages/*.jpg"):  # the header reads, the pixels do not
        content = image.read_bytes()
        image.write_bytes(content[: len(content) * 2 // 3])
    done = subprocess.run([sys.executable, "-m", "cotrain.train", "--preset", "smoke", "--data-root", str(data),
                           "--out", str(tmp_path / "runs"), "--name", "bad"], cwd=REPO, env=env(),
                          capture_output=True, text=True, timeout=400)
    last = [line for line in done.stderr.splitlines() if line.strip()][-1]
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert last.startswith("error: ") and ".jpg: cannot be decoded (OSError: image file is truncated" in last, last
    [trial] = trial_dirs(tmp_path / "runs" / "bad")
    error = (trial / "error.txt").read_text()
    assert "DataError" in error and "TrainingFailedError" not in error, error[-2000:]
