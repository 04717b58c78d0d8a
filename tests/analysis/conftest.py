"""Fixtures: results folders in Ray Tune's layout (see ``ray_layout``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ray_layout import ALPHA_01, VANILLA, config, write_experiment_files, write_trial


@pytest.fixture
def alpha_results(tmp_path: Path) -> Path:
    """A Table 7 sweep: Vanilla and α = 0.1 with 3 seeds; α = 1 with one finished, one
    failed and one unfinished seed; α = 0.5 failed; α = 5 with a truncated last line;
    α = 2 never run."""
    experiment = tmp_path / "results" / "alpha_sensitivity"
    write_experiment_files(experiment)
    index = 0
    for seed, final in enumerate(VANILLA):
        write_trial(experiment, index, config("7", "vanilla", seed), final)
        index += 1
    for seed, final in enumerate(ALPHA_01):
        write_trial(experiment, index, config("7", "ours", seed, alpha=0.1), final)
        index += 1
    write_trial(experiment, 6, config("7", "ours", 0), (62.0, 71.0))
    write_trial(experiment, 7, config("7", "ours", 1), (0.0, 0.0), reports=1, failed=True)
    write_trial(experiment, 8, config("7", "ours", 2), (0.0, 0.0), reports=1)
    write_trial(experiment, 9, config("7", "ours", 0, alpha=0.5), (0.0, 0.0), reports=0, failed=True)
    write_trial(experiment, 10, config("7", "ours", 0, alpha=5.0), (65.0, 72.0), truncate_last=True)
    (experiment / "_train" / "train-a1b2c_00000").mkdir(parents=True)
    return tmp_path / "results"


@pytest.fixture
def methods_results(tmp_path: Path) -> Path:
    """A methods sweep on two datasets (voc → Table 1, builtin → its own table), one seed."""
    experiment = tmp_path / "methods_results" / "methods"
    write_experiment_files(experiment)
    runs = [("voc", "vanilla", (67.0, 78.0)), ("voc", "ours", (69.0, 78.5)), ("voc", "dml", (66.5, 78.25)),
            ("builtin", "vanilla", (40.0, 45.0)), ("builtin", "ours", (41.0, 44.0))]
    for index, (dataset, method, final) in enumerate(runs):
        cfg = config("methods", method, 0, dataset=dataset, cnn="resnet18", vit="mit_b0")
        write_trial(experiment, index, cfg, final)
    return tmp_path / "methods_results"
