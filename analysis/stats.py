"""Statistics of a table's cells: mean, std, gain over Vanilla and its paired t-interval.

Every gain and Δ is recomputed from mIoU values, never copied: a student's gain is its mean
mIoU minus the mean mIoU of the Vanilla trials of the same table, pair and dataset; Δ is the
sum of both students' gains. With several seeds, the 95 % t-interval of a gain pairs seeds by
seed number (gain of seed s = cell seed s − Vanilla seed s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sstats

from analysis.results import FAILED, FINISHED, INVALID, UNFINISHED

STATS_COLUMNS = ["row", "cnn", "vit", "student", "n", "mean", "std", "gain", "ci_low", "ci_high",
                 "n_failed", "n_unfinished", "n_invalid"]


def seed_values(frame: pd.DataFrame, column: str) -> pd.Series:
    """Finished values of ``column`` indexed by seed; repeated seeds are averaged."""
    frame = frame.dropna(subset=[column]).assign(seed=frame["seed"].fillna(-1))
    return frame.groupby("seed")[column].mean()


def t_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Two-sided Student-t interval of the mean; NaNs when fewer than two values."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return math.nan, math.nan
    half = sstats.t.ppf(0.5 + level / 2, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size)
    return values.mean() - half, values.mean() + half


def _student_stats(values: pd.Series, reference: pd.Series, is_baseline: bool) -> dict[str, float]:
    """mean/std/n of one student's cell and its gain (with paired interval) over Vanilla."""
    gain = values.mean() - reference.mean() if len(values) and len(reference) else math.nan
    low, high = t_interval((values - reference).dropna()) if not is_baseline else (math.nan, math.nan)
    return {"n": len(values), "mean": values.mean() if len(values) else math.nan,
            "std": values.std(ddof=1) if len(values) > 1 else math.nan,
            "gain": 0.0 if is_baseline and len(values) else gain, "ci_low": low, "ci_high": high}


def cell_stats(cell: pd.DataFrame, baseline: pd.DataFrame, is_baseline: bool) -> list[dict[str, Any]]:
    """Statistics of one (row, pair) cell: one record per student and one for Δ."""
    done = cell[cell["status"] == FINISHED]
    first = cell.iloc[0]
    common = {"row": first["row"], "cnn": first["cnn"], "vit": first["vit"],
              "n_failed": int((cell["status"] == FAILED).sum()),
              "n_unfinished": int((cell["status"] == UNFINISHED).sum()),
              "n_invalid": int((cell["status"] == INVALID).sum())}
    records, paired = [], []
    for student in ("cnn", "vit"):
        values, reference = seed_values(done, f"miou_{student}"), seed_values(baseline, f"miou_{student}")
        records.append({**common, "student": student, **_student_stats(values, reference, is_baseline)})
        paired.append((values - reference).dropna())
    per_seed = (paired[0] + paired[1]).dropna()
    low, high = t_interval(per_seed) if not is_baseline else (math.nan, math.nan)
    delta = records[0]["gain"] + records[1]["gain"]
    records.append({**common, "student": "delta", "n": len(per_seed), "mean": math.nan, "std": math.nan,
                    "gain": delta, "ci_low": low, "ci_high": high})
    return records


def summarise(trials: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per-cell statistics of trials carrying a ``row`` key.

    Returns:
        One row per (row, cnn, vit, student ∈ {cnn, vit, delta}) with
        :data:`STATS_COLUMNS`; ``gain`` is NaN where no finished Vanilla trial of
        the same pair exists.
    """
    finished = trials[trials["status"] == FINISHED]
    records = []
    for (key, cnn, vit), cell in trials.groupby(["row", "cnn", "vit"], sort=False):
        reference = finished[(finished["row"] == baseline) & (finished["cnn"] == cnn) & (finished["vit"] == vit)]
        records += cell_stats(cell, reference, key == baseline)
    return pd.DataFrame(records, columns=STATS_COLUMNS)
