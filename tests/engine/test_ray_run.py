"""End to end through Ray: one Tune trial driving a TorchTrainer, then a resume from its checkpoint."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import yaml

from cotrain.config import TrainConfig
from cotrain.engine.loop import fit


@pytest.mark.slow  # about a minute on 2 CPUs (Ray start-up dominates), more with the resume below
def test_smoke_run_through_torch_trainer_then_resume(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cotrain.train", "--preset", "smoke", "--out", str(tmp_path),
                           "--name", "t1"], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "CNN (mobilenet_v2) mIoU:" in proc.stdout and "ViT (mit_b0) mIoU:" in proc.stdout

    experiment = tmp_path / "t1"
    cfg = TrainConfig.from_dict(yaml.safe_load((experiment / "config.yaml").read_text()))
    assert cfg.preset == "smoke" and cfg.name == "t1" and cfg.epochs == 2

    results = list(experiment.glob("*/result.json"))
    assert len(results) == 1, results
    rows = [json.loads(line) for line in results[0].read_text().splitlines() if line.strip()]
    assert [row["epoch"] for row in rows] == [1, 2]
    for row in rows:
        assert {"miou_cnn", "miou_vit", "iou_cnn"} <= set(row)

    checkpoints = sorted(experiment.glob("_train/train-*/checkpoint_*/checkpoint.pt"))
    assert checkpoints, list(experiment.rglob("*"))
    last = max(checkpoints, key=lambda p: torch.load(p, map_location="cpu", weights_only=True)["epoch"])
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 2

    reported: list[int] = []
    fit(cfg.replace(epochs=3), lambda metrics, folder: reported.append(metrics["epoch"]),
        resume_from=str(last.parent), log=lambda _: None)
    assert reported == [3]
