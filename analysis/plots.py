"""Figures: sensitivity curves, ablation bars, learning curves, distillation direction.

Which figure a table gets follows from its declaration: one varied number (α, β, γ...) gives a
sensitivity curve, several varied keys (the loss switches) give ablation bars, methods give neither.

Every figure is written as PNG and PDF; functions return the paths written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the sweeps run on machines without a display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from analysis.formatting import backbone_name
from analysis.paper import PaperTable
from analysis.results import Results
from analysis.stats import summarise
from analysis.tables import Rendered, assign_rows, order_rows
from cotrain.tables import BASELINE_ROW, TableSpec

STUDENTS = ("cnn", "vit")


def save(fig: plt.Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` and close the figure."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_name(stem.name + suffix) for suffix in (".png", ".pdf")]
    for path in paths:
        fig.savefig(path, bbox_inches="tight", dpi=150)
    plt.close(fig)
    return paths


def _figure(columns: int, size: tuple[float, float]) -> tuple[plt.Figure, np.ndarray]:
    """Panels side by side; constrained layout keeps every axis label (twin axes too) clear of the next panel."""
    fig, axes = plt.subplots(1, columns, figsize=size, squeeze=False, layout="constrained")
    return fig, axes[0]


def _legend_below(fig: plt.Figure, handles: list, labels: list, columns: int = 3) -> None:
    """One legend for the figure, under the panels, where it cannot cover a point."""
    unique = dict(zip(labels, handles))
    if unique:
        fig.legend(list(unique.values()), list(unique), loc="outside lower center", ncol=min(columns, len(unique)),
                   fontsize=7, frameon=False)


def _pair_stats(stats: pd.DataFrame | None, pair: tuple[str, str], student: str) -> pd.DataFrame:
    """Rows of ``stats`` for one pair and student, indexed by row key."""
    if stats is None or stats.empty:
        return pd.DataFrame(columns=["mean", "std", "n"])
    mask = (stats["cnn"] == pair[0]) & (stats["vit"] == pair[1]) & (stats["student"] == student)
    return stats[mask].set_index("row")


def _numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose key is a number (the varied weight), sorted by it."""
    keys = pd.to_numeric(pd.Series(frame.index, index=frame.index), errors="coerce")
    return frame[keys.notna().to_numpy()].assign(x=keys.dropna()).sort_values("x")


def plot_sensitivity(table: Rendered, paper_stats: pd.DataFrame | None, pair: tuple[str, str],
                     stem: Path) -> list[Path]:
    """mIoU of both students against α, β or γ (std over seeds as error bars).

    The paper's values are a dashed line on a twin axis, the measured Vanilla a dotted one.
    """
    param, symbol = table.spec.varies[0], table.spec.label_columns[0]
    fig, axes = _figure(2, (9, 4))
    handles: tuple[list, list] = ([], [])
    for ax, student in zip(axes, STUDENTS):
        measured = _pair_stats(table.stats, pair, student)
        points = _numeric(measured[measured["n"] > 0])
        ax.errorbar(points["x"], points["mean"], yerr=points["std"].fillna(0), marker="o", capsize=3,
                    label="measured")
        if "vanilla" in measured.index and measured.loc["vanilla", "n"] > 0:
            ax.axhline(measured.loc["vanilla", "mean"], color="C1", linestyle=":", label="Vanilla (measured)")
        paper = _numeric(_pair_stats(paper_stats, pair, student))
        found = ax.get_legend_handles_labels()
        if not paper.empty:
            # A twin axis: the paper's VOC numbers and a short run live on different scales.
            twin = ax.twinx()
            twin.plot(paper["x"], paper["mean"], "s--", color="grey", label="paper (right axis)")
            twin.set_ylabel("paper mIoU (%)", color="grey")
            twin.tick_params(axis="y", colors="grey")
            found = tuple(a + b for a, b in zip(found, twin.get_legend_handles_labels()))
        handles = (handles[0] + found[0], handles[1] + found[1])
        ticks = sorted(set(points["x"]) | set(paper["x"]) if not paper.empty else set(points["x"]))
        ax.set(xscale="log", xlabel=symbol, ylabel="mIoU (%)", title=backbone_name(pair[0 if student == "cnn" else 1]))
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
    _legend_below(fig, *handles)
    fig.suptitle(f"{table.title} ({param})", fontsize=9)
    return save(fig, stem)


def plot_ablation(table: Rendered, paper_stats: pd.DataFrame | None, pair: tuple[str, str],
                  stem: Path) -> list[Path]:
    """Grouped bars per ablation row: measured mIoU (± std over seeds) beside the paper's."""
    spec = table.spec
    shown = set(table.stats["row"]) | (set() if paper_stats is None else set(paper_stats["row"]))
    keys = [k for k in order_rows(spec, list(table.stats["row"])) if k in shown]
    labels = [" ".join(f"{c}{v}" for c, v in zip(spec.label_columns, spec.labels(k))) for k in keys]
    fig, axes = _figure(2, (11, 4.2))
    x = np.arange(len(keys))
    for ax, student in zip(axes, STUDENTS):
        measured = _pair_stats(table.stats, pair, student).reindex(keys)
        paper = _pair_stats(paper_stats, pair, student).reindex(keys)
        ax.bar(x - 0.2, measured["mean"], 0.4, yerr=measured["std"].fillna(0), capsize=3, label="measured")
        if paper["mean"].notna().any():  # no "paper" legend entry without paper bars
            ax.bar(x + 0.2, paper["mean"], 0.4, color="lightgrey", hatch="//", label="paper")
        values = pd.concat([measured["mean"], paper["mean"]]).dropna()
        if not values.empty:
            ax.set_ylim(values.min() - 2, values.max() + 1)
        ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=7)
        ax.set(ylabel="mIoU (%)", title=backbone_name(pair[0 if student == "cnn" else 1]))
    _legend_below(fig, *axes[0].get_legend_handles_labels())
    fig.suptitle(table.title, fontsize=9)
    return save(fig, stem)


def _trial_labels(trials: pd.DataFrame) -> pd.Series:
    """``<row> seed <s> (<cnn>+<vit>)`` per trial, indexed by trial id."""
    labels = trials["row"].astype(str) + " seed " + trials["seed"].astype(str)
    labels += " (" + trials["cnn"].map(backbone_name) + "+" + trials["vit"].map(backbone_name) + ")"
    return pd.Series(labels.to_numpy(), index=trials["trial_id"].to_numpy())


def plot_curves(history: pd.DataFrame, trials: pd.DataFrame, columns: Sequence[str], ylabel: str,
                title: str, stem: Path) -> list[Path]:
    """One panel per column of ``history`` against epoch, one line per trial."""
    history = history[history["trial_id"].isin(trials["trial_id"])]
    labels = _trial_labels(trials)
    fig, axes = _figure(len(columns), (5 * len(columns), 4.2))
    handles: dict = {}
    for ax, column in zip(axes, columns):
        if history["trial_id"].nunique() > 10:  # the default cycle repeats its colours after 10
            ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)
        for trial_id, curve in history.dropna(subset=[column]).groupby("trial_id", sort=False):
            line, = ax.plot(curve["epoch"], curve[column], marker=".", label=labels.get(trial_id, trial_id))
            handles.setdefault(line.get_label(), line)
        ax.set(xlabel="epoch", ylabel=ylabel, title=column)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    _legend_below(fig, list(handles.values()), list(handles), columns=2)
    fig.suptitle(title, fontsize=9)
    return save(fig, stem)


def _has_values(history: pd.DataFrame, columns: Sequence[str]) -> bool:
    return all(c in history for c in columns) and history[list(columns)].notna().any().any()


def figure_kind(spec: TableSpec) -> str | None:
    """``sensitivity`` for one varied weight, ``ablation`` for several varied keys, else no figure."""
    if spec.varies == ("method",):
        return None
    return "sensitivity" if len(spec.varies) == 1 else "ablation"


def plots_for_table(table: Rendered, trials: pd.DataFrame, history: pd.DataFrame,
                    paper: PaperTable | None, out: Path) -> list[Path]:
    """Every figure for one table: sensitivity or ablation per pair, learning curves, distillation direction."""
    trials = assign_rows(trials, table.spec)
    # This table's trials only: a figure is drawn where its own trials have values (the direction of
    # distillation: methods that select a teacher, see ``Method.selects_teacher``).
    history = history[history["experiment"].isin(trials["experiment"]) & history["trial_id"].isin(trials["trial_id"])]
    paper_stats = summarise(paper.trials, BASELINE_ROW) if paper is not None and paper.pairs else None
    kind = figure_kind(table.spec)
    paths: list[Path] = []
    for pair in dict.fromkeys(zip(table.stats["cnn"], table.stats["vit"])):
        tag = f"{pair[0]}+{pair[1]}"
        if kind == "sensitivity":
            paths += plot_sensitivity(table, paper_stats, pair, out / f"{table.name}_sensitivity_{tag}")
        elif kind == "ablation":
            paths += plot_ablation(table, paper_stats, pair, out / f"{table.name}_ablation_{tag}")
    if _has_values(history, ["miou_cnn", "miou_vit"]):
        paths += plot_curves(history, trials, ["miou_cnn", "miou_vit"], "mIoU (%)",
                             f"Learning curves: {table.title}", out / f"{table.name}_learning_curves")
    direction = ["cnn_teaches_pixels", "cnn_teaches_regions"]
    if _has_values(history, direction):
        paths += plot_curves(history, trials, direction, "fraction where the CNN teaches",
                             f"Direction of distillation: {table.title}", out / f"{table.name}_distillation_direction")
    return paths


def make_plots(rendered: Sequence[tuple[object, Rendered]], results: Results,
               papers: dict[str, PaperTable], out: Path) -> list[Path]:
    """Figures for every rendered table; ``rendered`` pairs a group (with ``.trials``, ``.dataset``) and its table."""
    paths: list[Path] = []
    for group, table in rendered:
        paper = papers.get(table.spec.paper_table(group.dataset))  # the paper's line where it has this table
        paths += plots_for_table(table, group.trials, results.history, paper, out)
    return paths
