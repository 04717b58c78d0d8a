"""``python -m cotrain.train``: bad input is one line on stderr, exit code 2, nothing written."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cotrain.train import main


def test_negative_alpha_subprocess_exits_2_with_one_line(tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "cotrain.train", "--alpha", "-1", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "alpha" in lines[0], proc.stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("argv,named", [
    (["--temperature", "0"], "temperature"),
    (["--cnn", "vgg16"], "vgg16"),
    (["--method", "magic"], "magic"),
    (["--crop-size", "100"], "crop_size"),
    (["--num-classes", "1"], "num_classes"),
    (["--eval-split", "test"], "eval_split"),  # the built-in dataset has train and val only
])
def test_bad_values_in_process(tmp_path, capsys, argv, named):
    out = tmp_path / "runs"
    with pytest.raises(SystemExit) as info:
        main([*argv, "--out", str(out), "--direct"])
    assert info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and named in err[0]
    assert not out.exists() or not any(out.iterdir())


def test_bad_yaml_file_in_process(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("alpha: 1\nnot_a_key: 2\n")
    with pytest.raises(SystemExit) as info:
        main(["--config", str(path), "--out", str(tmp_path / "runs"), "--direct"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not_a_key" in err[0]


def test_direct_smoke_run_writes_config_and_metrics(tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["--preset", "smoke", "--epochs", "1", "--out", str(out), "--name", "d1", "--direct"]) == 0
    text = capsys.readouterr().out
    assert "CNN (mobilenet_v2) mIoU" in text and "ViT (mit_b0) mIoU" in text
    folder = out / "d1"
    assert (folder / "config.yaml").is_file() and (folder / "checkpoint" / "checkpoint.pt").is_file()
    metrics = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 1
    assert metrics[0]["eval_split"] == "val" and metrics[0]["train_images"] > 0
