"""Files are written atomically and read without unpickling arbitrary objects."""
from __future__ import annotations

import ast
import json
import pathlib
import pickle
from pathlib import Path

import pytest
import torch
from reliability_helpers import REPO

from cotrain.engine.checkpoint import atomic_torch_save, load_state
from cotrain.errors import CheckpointError

STATE = {"pair": {"w": torch.ones(3)}, "config": {"seed": 0}, "num_classes": 8}


class Payload:
    """A custom class: a checkpoint holding one must be refused, not unpickled."""


class TouchOnUnpickle:
    """Unpickling this creates ``path``: proof that someone unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.path),)


def test_failed_save_keeps_the_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    atomic_torch_save(STATE, path)
    before = path.read_bytes()

    def dies_half_way(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        atomic_torch_save({**STATE, "num_classes": 9}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert load_state(path)["num_classes"] == 8


def test_checkpoint_with_a_custom_class_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({**STATE, "extra": Payload()}, path)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_state(path)


def test_checkpoint_that_runs_code_when_unpickled_is_refused(tmp_path):
    path, marker = tmp_path / "checkpoint.pt", tmp_path / "pwned"
    torch.save({**STATE, "extra": TouchOnUnpickle(marker)}, path)
    with pytest.raises(CheckpointError):
        load_state(path)
    assert not marker.exists()


def _imports_and_calls(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module or ""}
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            names.add(f"{node.value.id}.{node.attr}")
    return names


@pytest.mark.parametrize("path", sorted((REPO / "analysis").glob("*.py")), ids=lambda p: p.name)
def test_analysis_never_unpickles(path):
    """``analysis/`` reads JSON/CSV only; checkpoints only through ``load_pair_from_checkpoint``."""
    used = _imports_and_calls(path.read_text())
    unpicklers = {"pickle", "cPickle", "cloudpickle", "dill", "joblib", "torch.load", "pickle.load",
                  "pickle.loads", "pd.read_pickle", "pandas.read_pickle", "np.load", "numpy.load"}
    assert not used & unpicklers, f"{path.name} uses {sorted(used & unpicklers)}"
    loaders = {n for n in used if n.startswith("cotrain.engine.checkpoint.")}
    assert loaders <= {"cotrain.engine.checkpoint.load_pair_from_checkpoint"}, loaders


def test_make_tables_ignores_params_pkl(tmp_path):
    from analysis.results import load_results
    marker = tmp_path / "pwned"
    trial = tmp_path / "results" / "alpha" / "trial_00000"
    trial.mkdir(parents=True)
    config = {"table": "7", "method": "ours", "alpha": 0.5, "epochs": 1, "seed": 0, "dataset": "builtin"}
    (trial / "params.json").write_text(json.dumps(config))
    (trial / "result.json").write_text(json.dumps({"epoch": 1, "miou_cnn": 10.0, "miou_vit": 9.0}) + "\n")
    (trial / "params.pkl").write_bytes(pickle.dumps(TouchOnUnpickle(marker)))
    (trial / "error.pkl").write_bytes(pickle.dumps(TouchOnUnpickle(marker)))
    trials = load_results(tmp_path / "results").trials
    assert list(trials["status"]) == ["finished"] and list(trials["miou_cnn"]) == [10.0]
    assert not marker.exists()
