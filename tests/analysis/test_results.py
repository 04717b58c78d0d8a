"""Reading Ray Tune trial folders."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from analysis.results import (
    FAILED,
    FINISHED,
    UNFINISHED,
    load_results,
    read_result_lines,
    table_id,
)


def test_statuses_and_final_numbers(alpha_results: Path) -> None:
    with pytest.warns(UserWarning, match="not valid JSON"):
        results = load_results(alpha_results)
    trials = results.trials.set_index("trial_id")
    assert len(trials) == 11
    assert trials["status"].value_counts().to_dict() == {FINISHED: 7, FAILED: 2, UNFINISHED: 2}
    assert trials.loc["a1b2c_00004", ["miou_cnn", "miou_vit"]].tolist() == [62.5, 70.1]
    assert trials.loc["a1b2c_00004", "alpha"] == 0.1
    assert trials.loc["a1b2c_00007", "status"] == FAILED
    assert trials.loc["a1b2c_00008", "status"] == UNFINISHED


def test_truncated_last_line_keeps_earlier_reports(alpha_results: Path) -> None:
    path = next(alpha_results.glob("alpha_sensitivity/*_00010_*/result.json"))
    with pytest.warns(UserWarning, match=r"result.json:2: skipped"):
        records = read_result_lines(path)
    assert [r["epoch"] for r in records] == [1]
    with pytest.warns(UserWarning):
        trials = load_results(alpha_results).trials.set_index("trial_id")
    assert trials.loc["a1b2c_00010", "status"] == UNFINISHED
    assert trials.loc["a1b2c_00010", "last_epoch"] == 1


def test_history_and_per_class_iou(alpha_results: Path) -> None:
    with pytest.warns(UserWarning):
        results = load_results(alpha_results)
    curve = results.history[results.history["trial_id"] == "a1b2c_00003"]
    assert curve["epoch"].tolist() == [1.0, 2.0]
    assert curve["miou_cnn"].tolist() == [56.0, 61.0]
    assert curve["cnn_teaches_pixels"].tolist() == pytest.approx([0.35, 0.4])
    iou = results.iou[results.iou["trial_id"] == "a1b2c_00003"].set_index("class_name")
    assert iou.loc["square", "iou_cnn"] == 60.0
    assert math.isnan(iou.loc["disc", "iou_vit"])


def test_table_id_from_the_declared_table_and_dataset() -> None:
    from ray_layout import declared_layout
    methods = declared_layout("methods")
    assert table_id({"table": "7", "layout": declared_layout("7"), "dataset": "camvid"}) == "7"
    assert [table_id({"layout": methods, "dataset": d}) for d in ("voc", "cityscapes", "camvid")] == ["1", "2", "3"]
    assert table_id({"layout": methods, "dataset": "builtin"}) == "methods"
    assert table_id({"table": "search", "dataset": "voc"}) == "search", "no declaration: the table key as is"


def test_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_results(tmp_path / "absent")


def test_experiment_folder_itself_as_root(alpha_results: Path) -> None:
    with pytest.warns(UserWarning):
        trials = load_results(alpha_results / "alpha_sensitivity").trials
    assert set(trials["experiment"]) == {"test_sweep"}  # grouped by the sweep key, not the folder name
    assert {Path(d).parent.name for d in trials["trial_dir"]} == {"alpha_sensitivity"}


def test_cell_overrides_are_flattened(tmp_path: Path) -> None:
    from analysis.results import flatten_cell
    config = {"method": "ours", "alpha": 1.0, "cell": {"method": "vanilla", "cnn": "resnet18"}}
    assert flatten_cell(config) == {**config, "method": "vanilla", "cnn": "resnet18"}


def test_a_trial_restarted_after_a_failure_and_finished_counts_as_finished(tmp_path: Path) -> None:
    from ray_layout import config, write_trial
    experiment = tmp_path / "results" / "components"
    write_trial(experiment, 0, config("4", "ours", 0), (60.0, 70.0), failed=True)  # error.txt + every epoch
    write_trial(experiment, 1, config("4", "ours", 1), (60.0, 70.0), reports=1, failed=True)
    status = load_results(tmp_path / "results").trials.set_index("trial_id")["status"]
    assert status.to_dict() == {"a1b2c_00000": FINISHED, "a1b2c_00001": FAILED}
