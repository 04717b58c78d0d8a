"""``--weights imagenet`` on a node without internet: read from a shared cache filled by
``python -m cotrain.weights fetch``, or one line saying how to fill it. Never touches the network."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from reliability_helpers import REPO, env

OFFLINE = {"HF_HUB_OFFLINE": "1"}


def fake_cache(root: Path, encoder: str) -> dict[str, torch.Tensor]:
    """What ``fetch`` leaves for ``encoder`` (Hugging Face cache layout), with recognisable weights."""
    import segmentation_models_pytorch as smp
    from safetensors.torch import save_file

    from cotrain.models.weights import _source
    repo, revision = _source(encoder)
    snapshot = root / f"models--{repo.replace('/', '--')}" / "snapshots" / revision
    snapshot.mkdir(parents=True)
    state = {k: (v + 1).contiguous() for k, v in smp.encoders.get_encoder(encoder, weights=None).state_dict().items()}
    save_file(state, str(snapshot / "model.safetensors"))
    (snapshot / "config.json").write_text("{}")
    return state


@pytest.fixture
def offline(monkeypatch):
    import huggingface_hub.constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_imagenet_weights_come_from_the_shared_cache(tmp_path, monkeypatch, offline):
    from cotrain.cli import preflight
    from cotrain.config import resolve
    from cotrain.models.students import build_student
    expected = {name: fake_cache(tmp_path, name) for name in ("mobilenet_v2", "mit_b0")}
    monkeypatch.setenv("COTRAIN_WEIGHTS_CACHE", str(tmp_path))
    preflight(resolve("smoke", overrides={"weights": "imagenet", "out": str(tmp_path / "runs")}))
    for kind, name in (("cnn", "mobilenet_v2"), ("vit", "mit_b0")):
        loaded = build_student(kind, name, 8, "imagenet").model.encoder.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in expected[name].items()), name


def test_fetch_fills_the_cache_and_reports_what_to_set(tmp_path):
    fake_cache(tmp_path / "cache", "mobilenet_v2")
    done = subprocess.run([sys.executable, "-m", "cotrain.weights", "fetch", "--cnn", "mobilenet_v2", "--cache",
                           str(tmp_path / "cache")], cwd=REPO, env=env(**OFFLINE), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "model.safetensors" in done.stdout and f"COTRAIN_WEIGHTS_CACHE={tmp_path / 'cache'}" in done.stdout


def test_fetch_without_network_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "cotrain.weights", "fetch", "--vit", "mit_b0", "--cache",
                           str(tmp_path / "cache")], cwd=REPO, env=env(**OFFLINE), capture_output=True, text=True,
                          timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "could not get mit_b0's ImageNet weights" in lines[0]
