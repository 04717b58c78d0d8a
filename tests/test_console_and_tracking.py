"""What a user sees and keeps from a sweep (the README's main job, tests/conftest.py's α sweep): a readable console,
TensorBoard and MLflow per trial."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from cotrain import cli, launch
from tests.conftest import ALPHA_SWEEP_TRIALS, SweepRun

# Ray-internal text that reached the console before: C++ core-worker errors, Ray Train's INFO lines.
RAY_INTERNALS = ("PreemptionWatcher", "core_worker.cc", "max_restarts", "Reporting training result",
                 "Checkpoint successfully created", "PYTHON worker processes have been started")


def worker_lines(console: str) -> list[str]:
    return [line for line in console.splitlines() if line.startswith("(RayTrainWorker pid=")]


@pytest.mark.slow
def test_sweep_console_shows_each_worker_line_once_and_no_ray_internals(alpha_sweep_run: SweepRun):
    console = alpha_sweep_run.console
    lines = worker_lines(console)
    assert any(" step 1/2 " in line for line in lines) and any("mIoU CNN" in line for line in lines)
    repeated = [line for line, count in Counter(lines).items() if count > 1]
    assert not repeated, repeated
    assert not [line for line in lines if "[repeated" in line and "step" in line]  # a trial's own line, twice
    found = [text for text in RAY_INTERNALS if text in console]
    assert not found, found
    assert "Trial status:" in console  # Tune's table stays
    logs = re.search(r"Ray's own logs \(workers, Ray Train internals\): (\S+)", console)
    assert logs and Path(logs.group(1)).is_dir()  # the console names the folder of Ray's own logs


@pytest.mark.slow
def test_every_trial_writes_tensorboard_events(alpha_sweep: Path):
    trials = sorted((alpha_sweep / "alpha").glob("run_trial_*"))
    assert len(trials) == ALPHA_SWEEP_TRIALS
    for trial in trials:
        events = list(trial.glob("events.out.tfevents.*"))
        assert events and events[0].stat().st_size > 0, trial.name


@pytest.mark.slow
def test_mlflow_local_store_holds_one_run_per_trial_with_metrics(alpha_sweep: Path):
    mlflow = pytest.importorskip("mlflow")
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{(alpha_sweep / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("alpha")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == ALPHA_SWEEP_TRIALS
    for run in runs:
        assert {"miou_cnn", "miou_vit", "loss_cnn"} <= set(run.data.metrics)
        assert run.data.params["cell/method"] in {"vanilla", "ours"}
        assert len(client.get_metric_history(run.info.run_id, "miou_cnn")) == 2  # one per epoch


def test_mlflow_default_store_is_under_local_storage_and_needs_a_uri_remotely(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from cotrain.errors import ConfigError
    from cotrain.launch import tracking  # where mlflow_callback looks require_tracking_server up
    monkeypatch.setattr(tracking, "require_tracking_server", lambda uri: None)  # no server here; checked elsewhere
    callback = launch.mlflow_callback("", str(tmp_path), "exp")
    assert callback.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert launch.mlflow_callback("http://mlflow:5000", str(tmp_path), "exp").tracking_uri == "http://mlflow:5000"
    with pytest.raises(ConfigError, match="--mlflow without a URI needs local storage"):
        launch.mlflow_callback("", "s3://bucket/cotrain", "exp")


def test_mlflow_flag_is_optional_and_takes_an_optional_uri():
    parser = cli.OneLineParser()
    cli.add_mlflow_flag(parser)
    assert parser.parse_args([]).mlflow is None
    assert parser.parse_args(["--mlflow"]).mlflow == ""
    assert parser.parse_args(["--mlflow", "file:///x"]).mlflow == "file:///x"
