"""Tables from a real sweep's files (the session's smoke α sweep through Ray Tune + TorchTrainer)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.make_tables import main
from tests.conftest import ALPHA_SWEEP_TRIALS


def final_miou(experiment: Path) -> dict[tuple[str, float], tuple[float, float]]:
    out = {}
    for params in experiment.glob("*/params.json"):
        config = json.loads(params.read_text())
        config.update(config.pop("cell", {}))
        last = json.loads((params.parent / "result.json").read_text().splitlines()[-1])
        out[(config["method"], config["alpha"])] = (last["miou_cnn"], last["miou_vit"])
    return out


@pytest.mark.slow
def test_table7_cells_and_delta_come_from_the_trials_result_files(alpha_sweep: Path, tmp_path: Path, capsys) -> None:
    assert main(["--results", str(alpha_sweep), "--format", "csv", "--out", str(tmp_path), "--no-plots"]) == 0
    n = ALPHA_SWEEP_TRIALS
    expected = f"table7 <- {alpha_sweep / 'alpha'} ({n} trials: {n} finished, 0 failed, 0 unfinished)"
    assert expected in capsys.readouterr().out
    table = (tmp_path / "table7.csv").read_text()
    measured = final_miou(alpha_sweep / "alpha")
    vanilla = measured[("vanilla", 1.0)]
    for (method, alpha), (cnn, vit) in measured.items():
        if method == "ours":
            delta = (cnn - vanilla[0]) + (vit - vanilla[1])
            assert f"{cnn:.2f} ({cnn - vanilla[0]:+.2f})" in table
            assert f"{delta:+.2f}" in table
