"""Lay out a declared table (``cotrain.tables.TableSpec``): its rows, its columns and the paper beside it.

The statistics come from ``analysis.stats``, the cell text and file formats from ``analysis.formatting``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analysis.formatting import (
    PAPER_FLAG,
    Pair,
    backbone_name,
    column_names,
    format_delta,
    format_student,
    legend,
)
from analysis.paper import PaperTable
from analysis.stats import STATS_COLUMNS, summarise
from cotrain.tables import BASELINE_ROW, TableSpec

FLAG_TOLERANCE = 0.015


def _sort_key(key: str) -> tuple[int, float, str]:
    try:
        return (0, float(key), key)
    except ValueError:
        return (1, 0.0, key)


def order_rows(spec: TableSpec, keys: Sequence[str], paper_keys: Sequence[str] = ()) -> list[str]:
    """Vanilla, the declared rows, the paper's other rows, then measured extras in numeric/alphabetic order."""
    first = [BASELINE_ROW, *(key for key, _ in spec.rows), *paper_keys]
    extras = sorted((k for k in set(keys) if k not in first), key=_sort_key)
    return list(dict.fromkeys(first + extras))


def assign_rows(trials: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Add the ``row`` key column of ``spec`` to measured trials."""
    return trials.assign(row=[spec.row_key(config) for config in trials.to_dict("records")])


def _parse_gain(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def paper_flags(paper: PaperTable, stats: pd.DataFrame) -> dict[tuple[str, str, str, str], str]:
    """Cells whose printed subscript (or Δ) differs from the recomputed gain by > 0.015.

    Returns:
        Footnote text keyed by ``(row, cnn, vit, student)``.
    """
    labels = dict(paper.rows)
    flags = {}
    for stat in stats.to_dict("records"):
        key = (stat["row"], stat["cnn"], stat["vit"], stat["student"])
        printed = paper.printed.get(key)
        if printed is None or math.isnan(stat["gain"]):
            continue
        value = _parse_gain(printed)
        if value is None or abs(value - round(stat["gain"], 2)) > FLAG_TOLERANCE:
            who = "Δ" if stat["student"] == "delta" else backbone_name(stat[stat["student"]])
            flags[key] = (f"Table {paper.number}, {labels.get(stat['row'], stat['row'])}, {who} "
                          f"({backbone_name(stat['cnn'])}+{backbone_name(stat['vit'])}): "
                          f"printed {printed}, recomputed {stat['gain']:+.2f}")
    return flags


@dataclass
class Rendered:
    """One regenerated table.

    Attributes:
        name: File stem (``table7``).
        spec: The declared table it renders.
        title: Caption line.
        frame: The table as strings, label columns first.
        notes: Legend and footnote lines printed under the table.
        stats: Measured statistics (:func:`analysis.stats.summarise`), empty for paper-only tables.
        paper_stats: The paper's recomputed statistics, or ``None``.
    """

    name: str
    spec: TableSpec
    title: str
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    stats: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=STATS_COLUMNS))
    paper_stats: pd.DataFrame | None = None


def _lookup(stats: pd.DataFrame | None) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    if stats is None:
        return {}
    return {(s["row"], s["cnn"], s["vit"], s["student"]): s for s in stats.to_dict("records")}


def _cell(stats: Mapping, key: tuple[str, str, str, str]) -> str:
    stat = stats.get(key)
    formatter = format_delta if key[3] == "delta" else format_student
    return formatter(stat, key[0] == BASELINE_ROW)


def _frame(spec: TableSpec, rows: Sequence[str], pairs: Sequence[Pair], measured: Mapping | None,
           paper: Mapping | None, flags: Mapping) -> pd.DataFrame:
    """Assemble the string table: label columns, then per pair cnn, vit, Δ (paper beside each).

    A pair gets measured columns only if it was measured and paper columns only if
    the paper reports it.
    """
    names = column_names(pairs)
    measured_pairs = {k[1:3] for k in measured or {}}
    paper_pairs = {k[1:3] for k in paper or {}}
    records = []
    for key in rows:
        record = dict(zip(spec.label_columns, spec.labels(key)))
        for pair in pairs:
            for student in ("cnn", "vit", "delta"):
                cell_key = (key, *pair, student)
                if measured is not None and (pair in measured_pairs or not measured_pairs):
                    record[names[pair, student]] = _cell(measured, cell_key)
                if paper is not None and pair in paper_pairs:
                    flag = PAPER_FLAG if cell_key in flags else ""
                    record[names[pair, student] + " (paper)"] = _cell(paper, cell_key) + flag
        records.append(record)
    return pd.DataFrame(records)


def _missing_vanilla(stats: pd.DataFrame, baseline: str) -> list[str]:
    """A note per measured pair with no finished Vanilla trial (its gains cannot be computed)."""
    notes = []
    for (cnn, vit), group in stats.groupby(["cnn", "vit"], sort=False):
        base = group[(group["row"] == baseline) & (group["n"] > 0)]
        if base.empty:
            notes.append(f"No finished Vanilla trial for {backbone_name(cnn)}+{backbone_name(vit)}: "
                         f"gains and Δ not computed.")
    return notes


def _notes(measured: pd.DataFrame | None, paper_stats: pd.DataFrame | None, flags: Mapping) -> list[str]:
    """Legend, missing-Vanilla notes and the paper's self-disagreements under a table."""
    notes = legend(pd.concat([s for s in (measured, paper_stats) if s is not None]), measured is not None)
    notes += _missing_vanilla(measured, BASELINE_ROW) if measured is not None else []
    if flags:
        notes.append(f"{PAPER_FLAG} = the paper's printed gain (subscript or Δ) differs from its own numbers "
                     f"by more than {FLAG_TOLERANCE}:")
    return notes + [f"{PAPER_FLAG} {text}" for text in flags.values()]


def render_table(name: str, spec: TableSpec, title: str, trials: pd.DataFrame | None,
                 paper: PaperTable | None) -> Rendered:
    """Regenerate one declared table.

    Args:
        name: File stem for the outputs.
        spec: The declared table: rows, labels and caption.
        title: Caption line.
        trials: Measured trials (any status) with config columns, or ``None`` for
            the paper's numbers alone.
        paper: The paper's table to show beside the measured numbers (or alone), or ``None``.
    """
    measured = summarise(assign_rows(trials, spec), BASELINE_ROW) if trials is not None else None
    paper_stats = summarise(paper.trials, BASELINE_ROW) if paper is not None else None
    flags = paper_flags(paper, paper_stats) if paper is not None else {}
    keys = [] if measured is None else list(measured["row"])
    rows = order_rows(spec, keys, [k for k, _ in paper.rows] if paper is not None else [])
    measured_pairs = [] if measured is None else list(zip(measured["cnn"], measured["vit"]))
    paper_pairs = paper.pairs if paper is not None else []
    # Measured pairs first (in the paper's order where the paper has them), paper-only pairs last.
    pairs = list(dict.fromkeys([p for p in paper_pairs if p in measured_pairs] + measured_pairs + paper_pairs))
    frame = _frame(spec, rows, pairs, _lookup(measured) if measured is not None else None,
                   _lookup(paper_stats) if paper is not None else None, flags)
    if measured is None:
        frame = frame.rename(columns=lambda c: c.removesuffix(" (paper)"))
    empty = pd.DataFrame(columns=STATS_COLUMNS)
    return Rendered(name, spec, title, frame, _notes(measured, paper_stats, flags),
                    measured if measured is not None else empty, paper_stats)
