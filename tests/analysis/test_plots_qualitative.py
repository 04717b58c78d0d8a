"""Figures: ablation bars, and the Fig. 4 pieces that need no trained model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from ray_layout import config, declared_layout, write_trial

from analysis.make_tables import main
from analysis.paper import paper_table
from analysis.plots import plot_ablation
from analysis.qualitative import (
    colourise,
    draw,
    figure_rows,
    newest_checkpoint,
    pick_trials,
)
from analysis.results import load_results
from analysis.tables import render_table
from cotrain.tables import TableSpec


def declared(table: str) -> TableSpec:
    return TableSpec.from_dict(declared_layout(table))


def test_ablation_bars_written(tmp_path: Path) -> None:
    experiment = tmp_path / "results" / "components"
    write_trial(experiment, 0, config("4", "vanilla", 0), (50.0, 60.0))
    write_trial(experiment, 1, config("4", "ours", 0, hfd=True, bsd_region=False, bsd_pixel=False), (51.0, 60.5))
    # A trial folder without params.json or a config is skipped with a warning.
    (experiment / "trial_fn_a1b2c_00009_9").mkdir()
    (experiment / "trial_fn_a1b2c_00009_9" / "result.json").write_text("{}\n")
    with pytest.warns(UserWarning, match="skipped"):
        trials = load_results(tmp_path / "results").trials
    table = render_table("table4", declared("4"), "Table 4", trials, None)
    paper_stats = render_table("p", declared("4"), "p", None, paper_table("4")).paper_stats
    paths = plot_ablation(table, paper_stats, ("mobilenet_v2", "mit_b1"), tmp_path / "out" / "table4_ablation")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)
    assert table.frame.iloc[1].tolist() == ["✓", "✓", "✗", "51.00 (+1.00)", "60.50 (+0.50)", "+1.50"]


def test_newest_checkpoint_by_name(tmp_path: Path) -> None:
    for index in (0, 2, 10):
        folder = tmp_path / "_train" / "train-a1b2c_00000" / f"checkpoint_{index:06d}"
        folder.mkdir(parents=True)
        (folder / "checkpoint.pt").write_bytes(b"")
    assert newest_checkpoint(tmp_path, "a1b2c_00000").parent.name == "checkpoint_000010"
    with pytest.raises(FileNotFoundError, match="train-zzz"):
        newest_checkpoint(tmp_path, "zzz")


def test_pick_trials_matches_pair_and_seed(alpha_results: Path, methods_results: Path) -> None:
    with pytest.warns(UserWarning), pytest.raises(LookupError):
        pick_trials(load_results(alpha_results).trials.assign(method="vanilla"))
    vanilla, ours = pick_trials(load_results(methods_results).trials)
    assert (vanilla["method"], ours["method"]) == ("vanilla", "ours")
    assert (vanilla["dataset"], vanilla["seed"]) == (ours["dataset"], ours["seed"])


def test_colourise_uses_palette_and_whitens_ignore() -> None:
    palette = np.array([[0, 0, 0], [200, 0, 0]], dtype=np.uint8)
    out = colourise(np.array([[0, 1], [255, 1]]), palette)
    assert out[0, 1].tolist() == [200, 0, 0] and out[1, 0].tolist() == [255, 255, 255]


class FakePair:
    """Predicts class 1 on the left half; checks the input is padded to a multiple of 32."""

    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert images.shape[-1] % 32 == 0 and images.shape[-2] % 32 == 0
        logits = torch.zeros(images.shape[0], 2, *images.shape[-2:])
        logits[:, 1, :, : images.shape[-1] // 2] = 1
        return logits, logits.flip(1)


class FakeDataset:
    palette = ((0, 0, 0), (0, 128, 0))

    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.full((3, 36, 40), 100, dtype=torch.uint8), torch.ones(36, 40, dtype=torch.int64)


def test_figure_rows_and_draw(tmp_path: Path) -> None:
    rows = figure_rows(FakePair(), FakePair(), FakeDataset(), 2, lambda image, mask: (image.float() / 255, mask))
    assert len(rows) == 2 and all(len(r) == 6 for r in rows)
    assert rows[0][2].shape == (36, 40, 3)
    assert rows[0][2][0, 0].tolist() == [0, 128, 0] and rows[0][4][0, 0].tolist() == [0, 0, 0]
    paths = draw(rows, "fake", tmp_path / "qualitative_fake")
    assert all(p.stat().st_size > 1000 for p in paths)


def test_qualitative_without_checkpoints_is_reported(methods_results: Path, capsys) -> None:
    status = main(["--results", str(methods_results), "--no-plots", "--qualitative", "2"])
    assert status == 1
    assert "qualitative figure not made: no checkpoint_*/checkpoint.pt under" in capsys.readouterr().err


def test_qualitative_end_to_end_with_real_checkpoints(methods_results: Path, tmp_path: Path) -> None:
    checkpoint = pytest.importorskip("cotrain.engine.checkpoint", reason="needs the lead's checkpoint loader")
    from cotrain.config import TrainConfig
    from cotrain.data import get_spec
    from cotrain.pair import build_pair

    num_classes = get_spec("builtin").num_classes
    trials = load_results(methods_results).trials
    for trial in trials[trials["dataset"] == "builtin"].itertuples():
        cfg = TrainConfig(dataset="builtin", cnn="resnet18", vit="mit_b0", method=trial.method)
        pair = build_pair("resnet18", "mit_b0", num_classes, None, "vanilla")
        folder = Path(trial.trial_dir).parent / "_train" / f"train-{trial.trial_id}" / "checkpoint_000001"
        checkpoint.atomic_torch_save({"pair": pair.state_dict(), "config": cfg.to_dict(),
                                      "num_classes": num_classes}, folder / "checkpoint.pt")
    builtin_only = trials[trials["dataset"] == "builtin"]
    from analysis.qualitative import make_qualitative
    from analysis.results import Results

    paths = make_qualitative(Results(builtin_only, pd.DataFrame(), pd.DataFrame()), 2, tmp_path / "out",
                             tmp_path / "builtin_data")
    assert [p.name for p in paths] == ["qualitative_methods.png", "qualitative_methods.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)


def _drawn_figures(monkeypatch) -> list:
    """Figures the plot functions would save, kept open and drawn for layout checks."""
    import analysis.plots as plots
    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, stem: figures.append(fig) or fig.canvas.draw() or [])
    return figures


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_sensitivity_axis_labels_and_legend_stay_clear_of_each_other_and_the_points(alpha_results, monkeypatch):
    from analysis.plots import plot_sensitivity
    figures = _drawn_figures(monkeypatch)
    trials = load_results(alpha_results).trials
    table = render_table("table7", declared("7"), "Table 7", trials, paper_table("7"))
    paper_stats = table.paper_stats
    plot_sensitivity(table, paper_stats, ("mobilenet_v2", "mit_b1"), Path("unused"))
    fig = figures[0]
    left, right = fig.axes[0], fig.axes[1]
    twin = next(ax for ax in fig.axes[2:] if ax.bbox.bounds == left.bbox.bounds)  # the left panel's paper axis
    renderer = fig.canvas.get_renderer()
    assert twin.yaxis.label.get_text() == "paper mIoU (%)"
    assert not _overlap(twin.yaxis.label.get_window_extent(renderer), right.yaxis.label.get_window_extent(renderer))
    assert not _overlap(twin.get_tightbbox(renderer), right.get_tightbbox(renderer))
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    legend = fig.legends[0].get_window_extent(renderer)
    assert all(legend.y1 <= ax.get_window_extent(renderer).y0 for ax in (left, right))  # below the panels


def test_learning_curves_have_whole_epoch_ticks_and_one_legend_below(alpha_results, monkeypatch):
    from analysis.plots import plot_curves
    from analysis.tables import assign_rows
    figures = _drawn_figures(monkeypatch)
    results = load_results(alpha_results)
    trials = assign_rows(results.trials, declared("7"))
    plot_curves(results.history, trials, ["miou_cnn", "miou_vit"], "mIoU (%)", "t", Path("unused"))
    fig = figures[0]
    for ax in fig.axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert ax.get_legend() is None
    assert len(fig.legends) == 1
