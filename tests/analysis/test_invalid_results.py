"""Impossible results (issue #25): an mIoU of ``Infinity`` or ``NaN``, an emptied or corrupt ``result.json``.
make_tables names each file on stderr, shows its cell as ``invalid`` and keeps every other cell right."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from ray_layout import config, write_experiment_files, write_trial

from analysis.make_tables import main
from analysis.results import INVALID, load_results


def md_rows(text: str) -> dict[str, list[str]]:
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]
    return {row[0]: row[1:] for row in rows}


@pytest.fixture
def impossible(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """Table 7, one seed: Vanilla and α = 0.1 fine; α = 0.5 ends with miou_vit = Infinity, α = 1 with
    miou_cnn = NaN; α = 2's result.json emptied (progress.csv still holds its reports); α = 5's corrupt."""
    experiment = tmp_path / "results" / "alpha"
    write_experiment_files(experiment)
    write_trial(experiment, 0, config("7", "vanilla", 0), (60.0, 70.0))
    write_trial(experiment, 1, config("7", "ours", 0, alpha=0.1), (61.0, 70.5))
    bad = {"0.5": write_trial(experiment, 2, config("7", "ours", 0, alpha=0.5), (62.0, math.inf)),
           "1.0": write_trial(experiment, 3, config("7", "ours", 0, alpha=1.0), (math.nan, 71.0)),
           "2.0": write_trial(experiment, 4, config("7", "ours", 0, alpha=2.0), (63.0, 71.0)),
           "5.0": write_trial(experiment, 5, config("7", "ours", 0, alpha=5.0), (64.0, 72.0))}
    (bad["2.0"] / "result.json").write_text("")
    (bad["2.0"] / "progress.csv").write_text("epoch,miou_cnn,miou_vit\n1,58.0,66.0\n2,63.0,71.0\n")
    (bad["5.0"] / "result.json").write_bytes(b"\x00" * 64 + b"\n" + b"\x00" * 64)
    return tmp_path / "results", {row: trial / "result.json" for row, trial in bad.items()}


def test_each_impossible_result_is_named_and_shown_invalid(impossible, capsys) -> None:
    results, files = impossible
    with pytest.warns(UserWarning, match="not valid JSON"):  # the corrupt lines, as for a truncated write
        assert main(["--results", str(results), "--no-plots"]) == 0
    shown = capsys.readouterr()
    named = [line for line in shown.err.splitlines() if line.startswith("make_tables.py: ")]
    assert len(named) == 4, shown.err
    for path in files.values():
        assert sum(str(path) in line and line.endswith("its cell shows 'invalid'") for line in named) == 1, named
    assert "miou_vit=inf" in shown.err and "miou_cnn=nan" in shown.err
    assert "empty, while progress.csv holds 2 report(s)" in shown.err and "(corrupt)" in shown.err
    assert "(6 trials: 2 finished, 0 failed, 0 unfinished, 4 invalid)" in shown.out
    rows = md_rows((results / "tables" / "table7.md").read_text())
    for row in files:
        assert rows[row] == ["invalid", "invalid", "invalid"], rows[row]
    assert rows["Vanilla"] == ["60.00", "70.00", "0.00"]
    assert rows["0.1"] == ["61.00 (+1.00)", "70.50 (+0.50)", "+1.50"]
    table = (results / "tables" / "table7.md").read_text()
    assert "inf" not in table and "nan" not in table


def test_invalid_trials_count_nowhere_and_curves_stay_finite(impossible) -> None:
    results, _ = impossible
    with pytest.warns(UserWarning):
        loaded = load_results(results)
    status = dict(zip(loaded.trials["trial_dir"].map(lambda d: Path(d).name.split("_")[3]), loaded.trials["status"]))
    assert status == {"00000": "finished", "00001": "finished", "00002": INVALID, "00003": INVALID,
                      "00004": INVALID, "00005": INVALID}
    assert loaded.trials["problem"].isna().sum() == 2
    numbers = loaded.history[["miou_cnn", "miou_vit"]].to_numpy().ravel()
    assert not any(math.isinf(v) for v in numbers)  # an Infinity in a report is no point of a curve


def test_an_empty_result_json_alone_is_a_trial_that_has_not_reported(tmp_path: Path) -> None:
    """Ray creates result.json when a trial starts: empty, without progress rows, it is unfinished."""
    experiment = tmp_path / "alpha"
    trial = write_trial(experiment, 0, config("7", "ours", 0, alpha=0.1), (61.0, 70.0), reports=0)
    assert (trial / "result.json").read_text() == ""
    assert load_results(experiment).trials["status"].tolist() == ["unfinished"]
