"""Trackers show what a trial ran (issue #23): a sweep's flat keys are the trial's own values, and a run made
with ``COTRAIN_PLUGINS`` records its plugin modules and names them when it cannot be read without them."""
from __future__ import annotations

import pickle
import runpy

import cloudpickle
import pytest
import yaml
from ray.tune.search.variant_generator import generate_variants

from cotrain.config import TrainConfig, resolve
from cotrain.errors import ConfigError
from cotrain.sweep import param_space
from tests.conftest import REPO


def trial_configs(space: dict) -> list[dict]:
    """The configs Tune gives the trials of ``space`` (its own grid and ``sample_from`` resolution)."""
    return [config for _, config in generate_variants(space)]


def test_every_trial_of_a_sweep_shows_its_own_values_in_the_flat_keys():
    spec = runpy.run_path(str(REPO / "sweeps" / "alpha_sensitivity.py"))["SPEC"]
    base = resolve("smoke", overrides=spec.fixed)
    cells = [{"cnn": "mobilenet_v2", "vit": "mit_b0", **cell} for cell in spec.cells]
    configs = trial_configs(param_space(base, cells, 2, spec.table))
    assert len(configs) == 12
    for config in configs:
        assert {k: config[k] for k in config["cell"]} == config["cell"]  # params.json, TensorBoard, MLflow
    shown = sorted({(c["method"], c["alpha"]) for c in configs})
    assert shown == [("ours", 0.1), ("ours", 0.5), ("ours", 1.0), ("ours", 2.0), ("ours", 5.0), ("vanilla", 1.0)]
    assert sorted(c["seed"] for c in configs) == [0] * 6 + [1] * 6  # the seed grid stays a grid


def test_a_resumed_sweep_reads_the_same_space_back():
    base = resolve("smoke")
    space = param_space(base, [{"method": "vanilla", "seed": 3}, {"method": "ours", "alpha": 0.1, "seed": 4}], None)
    again = pickle.loads(cloudpickle.dumps(space))  # as Tune stores it in tuner.pkl
    assert [(c["method"], c["alpha"], c["seed"]) for c in trial_configs(again)] == \
        [("vanilla", 1.0, 3), ("ours", 0.1, 4)]


def test_a_run_records_its_plugin_modules(monkeypatch):
    monkeypatch.delenv("COTRAIN_PLUGINS", raising=False)
    assert resolve("smoke").plugins is None
    monkeypatch.setenv("COTRAIN_PLUGINS", "cwd_plugin")
    assert resolve("smoke").plugins == "cwd_plugin"  # in config.yaml, params.json and every checkpoint
    assert resolve("smoke", file_values={"plugins": "older"}).plugins == "older"  # a saved config keeps its own


@pytest.mark.parametrize("values,named", [
    ({"cwd_weight": 0.5}, "unknown config key(s) ['cwd_weight']"),
    ({"method": "cwd"}, "method='cwd' is invalid"),
])
def test_reading_a_plugin_run_without_the_plugin_names_it(monkeypatch, values, named):
    monkeypatch.delenv("COTRAIN_PLUGINS", raising=False)
    saved = {**resolve("smoke").to_dict(), "plugins": "cwd_plugin", **values}
    with pytest.raises(ConfigError) as exc:
        TrainConfig.from_dict(saved)
    message = str(exc.value)
    assert named in message and "COTRAIN_PLUGINS=cwd_plugin" in message and "cwd_plugin not loaded" in message


def test_resuming_a_plugin_run_without_the_plugin_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    from cotrain.train import main
    monkeypatch.delenv("COTRAIN_PLUGINS", raising=False)
    saved = {**resolve("smoke").to_dict(), "method": "cwd", "cwd_weight": 0.5, "plugins": "cwd_plugin",
             "out": str(tmp_path), "name": "r"}
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(SystemExit) as exit_:
        main(["--resume", "--name", "r", "--out", str(tmp_path), "--direct"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1
    assert "cwd_weight" in err[0] and "COTRAIN_PLUGINS=cwd_plugin" in err[0]
