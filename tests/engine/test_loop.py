"""The co-training loop without Ray: reports, exact resume at an epoch boundary, NaN detection."""
from __future__ import annotations

import copy
import dataclasses
import itertools
import shutil
from pathlib import Path

import pytest
import torch

from cotrain.config import resolve
from cotrain.engine.checkpoint import CHECKPOINT_FILE
from cotrain.engine.data import build_train_data
from cotrain.engine.loop import build_run, build_train_loader, fit, seed_epoch, training_step
from cotrain.errors import NonFiniteLossError
from cotrain.methods.ours.method import Ours

METRIC_KEYS = {"epoch", "loss_cnn", "loss_vit", "ce_cnn", "ce_vit", "hfd_cnn", "hfd_vit", "bsd_r_cnn", "bsd_r_vit",
               "bsd_p_cnn", "bsd_p_vit", "cnn_teaches_pixels", "cnn_teaches_regions", "miou_cnn", "miou_vit",
               "iou_cnn", "iou_vit", "class_names", "eval_protocol", "lr_cnn", "lr_vit", "epoch_time_s"}


class Stop(Exception):
    """Raised from a report to end a run after an epoch, as a killed job would."""


class Recorder:
    """A ``report`` that keeps each epoch's metrics and checkpoint state; optionally keeps the folder."""

    def __init__(self, keep: Path | None = None, stop_after: int | None = None) -> None:
        self.metrics: list[dict] = []
        self.states: list[dict] = []
        self.keep, self.stop_after = keep, stop_after

    def __call__(self, metrics: dict, folder: str | None) -> None:
        assert folder is not None and (Path(folder) / CHECKPOINT_FILE).is_file()
        self.metrics.append(dict(metrics))
        self.states.append(torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=True))
        if self.keep is not None:
            shutil.copytree(folder, self.keep, dirs_exist_ok=True)
        if self.stop_after is not None and metrics["epoch"] >= self.stop_after:
            raise Stop


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def cfg():
    return resolve("smoke", overrides={"device": "cpu"})


@pytest.fixture(scope="module")
def two_epochs(cfg) -> Recorder:
    recorder = Recorder()
    fit(cfg, recorder, log=quiet)
    return recorder


def test_fit_reports_every_epoch_with_all_metrics(two_epochs, cfg):
    assert [m["epoch"] for m in two_epochs.metrics] == [1, 2]
    for metrics in two_epochs.metrics:
        assert METRIC_KEYS <= set(metrics), METRIC_KEYS - set(metrics)
        assert 0.0 <= metrics["miou_cnn"] <= 100.0 and 0.0 <= metrics["miou_vit"] <= 100.0
        assert len(metrics["iou_cnn"]) == len(metrics["class_names"]) == len(metrics["iou_vit"])
        assert all(torch.isfinite(torch.tensor(metrics[k])) for k in ("loss_cnn", "loss_vit", "hfd_cnn", "bsd_p_vit"))
    assert [s["epoch"] for s in two_epochs.states] == [1, 2]
    assert two_epochs.states[-1]["config"] == cfg.to_dict()


def test_resume_at_epoch_boundary_equals_uninterrupted_run(two_epochs, cfg, tmp_path):
    folder = tmp_path / "epoch1"
    with pytest.raises(Stop):
        fit(cfg, Recorder(keep=folder, stop_after=1), log=quiet)
    resumed = Recorder()
    fit(cfg, resumed, resume_from=str(folder), log=quiet)
    assert [m["epoch"] for m in resumed.metrics] == [2]
    expected, got = two_epochs.metrics[-1], resumed.metrics[-1]
    for key in ("miou_cnn", "miou_vit", "iou_cnn", "iou_vit", "loss_cnn", "loss_vit", "lr_cnn", "lr_vit"):
        assert got[key] == expected[key], key
    reference, state = two_epochs.states[-1], resumed.states[-1]
    assert reference["pair"].keys() == state["pair"].keys()
    for key, value in reference["pair"].items():
        assert torch.equal(state["pair"][key], value), key
    for side in ("cnn", "vit"):
        assert state["schedulers"][side] == reference["schedulers"][side]


def test_injected_nan_names_the_term(cfg, monkeypatch):
    original = Ours.terms

    def poisoned(self, ctx):
        extra_c, extra_v, named = original(self, ctx)
        return extra_c, extra_v, {**named, "bsd_p_cnn": torch.tensor(float("nan"))}

    monkeypatch.setattr(Ours, "terms", poisoned)
    with pytest.raises(NonFiniteLossError, match="bsd_p_cnn"):
        fit(cfg.replace(epochs=1, max_train_steps=1), Recorder(), log=quiet)


def test_nan_in_a_total_stops_training(cfg, monkeypatch):
    original = Ours.terms

    def poisoned(self, ctx):
        extra_c, extra_v, named = original(self, ctx)
        return extra_c, extra_v * float("nan"), named

    monkeypatch.setattr(Ours, "terms", poisoned)
    reports = Recorder()
    with pytest.raises(NonFiniteLossError, match="'vit'"):
        fit(cfg.replace(epochs=1, max_train_steps=1), reports, log=quiet)
    assert reports.metrics == []


@pytest.fixture(scope="module")
def dml_run(cfg):
    run = build_run(cfg.replace(method="dml"))
    run.pair.eval()  # no dropout, fixed BatchNorm statistics: forwards are repeatable
    return run


@pytest.mark.parametrize("order", ["joint", "sequential"])
def test_update_order_decides_which_cnn_the_vit_learns_from(dml_run, order):
    """Sequential (DML's order): L^V is computed after the CNN's step; joint: both on the same forward."""
    run = dataclasses.replace(dml_run, cfg=dml_run.cfg.replace(update_order=order))
    images, target = next(iter(run.train_loader))
    before = copy.deepcopy(run.pair.state_dict())
    losses = training_step(run, images, target)
    after = copy.deepcopy(run.pair.state_dict())
    vit_keys = [k for k in before if not k.startswith("cnn.")]
    run.pair.load_state_dict({**after, **{k: before[k] for k in vit_keys}})  # stepped CNN, ViT before its step
    with torch.no_grad():
        against_stepped_cnn = run.pair.losses(images, target)["kd_vit"]
        run.pair.load_state_dict(before)
        against_old_cnn = run.pair.losses(images, target)["kd_vit"]
    expected, other = ((against_stepped_cnn, against_old_cnn) if order == "sequential"
                       else (against_old_cnn, against_stepped_cnn))
    torch.testing.assert_close(losses["kd_vit"], expected)
    assert not torch.isclose(losses["kd_vit"], other)
    assert all(not torch.equal(before[k], after[k]) for k in ("cnn.model.segmentation_head.0.weight",
                                                             "vit.model.segmentation_head.0.weight"))


def epoch_batches(loader, epoch: int) -> list[torch.Tensor]:
    seed_epoch(loader, 0, epoch)
    return [images for images, _ in itertools.islice(loader, 2)]


def test_an_epoch_draws_the_same_crops_whether_or_not_the_loader_served_the_epochs_before():
    """With loader workers (the cpu and paper presets have them), a run resumed at epoch 2 must see the
    augmented batches of the uninterrupted run's epoch 2; persistent workers once seeded them only once."""
    cfg = resolve("smoke", overrides={"num_workers": 1, "max_train_steps": 2})
    dataset, _ = build_train_data(cfg)
    uninterrupted, resumed = (build_train_loader(dataset, cfg, torch.device("cpu")) for _ in range(2))
    epoch_batches(uninterrupted, 1)
    again = epoch_batches(uninterrupted, 2)
    fresh = epoch_batches(resumed, 2)
    assert all(torch.equal(a, b) for a, b in zip(again, fresh, strict=True))
    assert not torch.equal(again[0], epoch_batches(resumed, 3)[0])  # the epoch does change the draws
