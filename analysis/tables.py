"""Regenerate the paper's Tables 1-9 from measured trials (and/or the paper's numbers).

Every gain and Δ is recomputed from mIoU values, never copied: a student's gain is
its mean mIoU minus the mean mIoU of the Vanilla trials of the same experiment, pair
and dataset; Δ is the sum of both students' gains. With several seeds, the 95 %
t-interval of a gain pairs seeds by seed number (gain of seed s = cell seed s −
Vanilla seed s).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sstats

from analysis.paper import PaperTable
from analysis.results import FAILED, FINISHED, UNFINISHED

BACKBONES = {"mobilenet_v2": "MobileNetV2", "resnet50": "ResNet-50", "resnet18": "ResNet-18",
             "resnet34": "ResNet-34", "resnet101": "ResNet-101"}
DATASETS = {"voc": "PASCAL VOC 2012", "cityscapes": "Cityscapes", "camvid": "CamVid"}
METHODS = {"vanilla": "Vanilla", "offline_kd": "Offline KD", "dml": "DML", "kdcl": "KDCL",
           "ifvd": "IFVD", "ours": "Ours"}
SENSITIVITY = {"7": ("alpha", "α"), "8": ("beta", "β"), "9": ("gamma", "γ")}
SWITCH_TABLES = ("4", "5")
CAPTIONS = {
    "1": "Comparison with the SoTA KD methods", "2": "Comparison with the SoTA KD methods",
    "3": "Comparison with the SoTA KD methods", "4": "Ablation of HFD and BSD",
    "5": "Ablation of the two components of BSD", "6": "Comparison with Vanilla for other pairs",
    "7": "Sensitivity of α", "8": "Sensitivity of β", "9": "Sensitivity of γ",
}
BASELINE_SWITCHES = "hfd=0 bsd_r=0 bsd_p=0"
MISSING, FAILED_CELL = "—", "failed"
SIGNIFICANT, PAPER_FLAG = "*", "†"
FLAG_TOLERANCE = 0.015
STATS_COLUMNS = ["row", "cnn", "vit", "student", "n", "mean", "std", "gain", "ci_low", "ci_high",
                 "n_failed", "n_unfinished"]

Pair = tuple[str, str]


def backbone_name(code: str) -> str:
    """Printable backbone name: ``mobilenet_v2`` → ``MobileNetV2``, ``mit_b1`` → ``MiT-B1``."""
    if code in BACKBONES:
        return BACKBONES[code]
    return f"MiT-B{code[5:]}" if code.startswith("mit_b") else code


def layout_number(table_id: str) -> str:
    """Paper table whose layout renders ``table_id``: methods sweeps on other datasets use Table 1's."""
    return table_id if table_id in CAPTIONS else "1"


def switches_key(hfd: Any, bsd_region: Any, bsd_pixel: Any) -> str:
    """Row key of Tables 4/5 from the three loss switches."""
    return f"hfd={int(bool(hfd))} bsd_r={int(bool(bsd_region))} bsd_p={int(bool(bsd_pixel))}"


def row_key(number: str, config: Mapping[str, Any]) -> str:
    """The row of layout ``number`` that a trial config belongs to.

    Tables 4/5 key rows by the switches (Vanilla, or Ours with every switch off, is
    the all-off row); Tables 7-9 by the varied weight (``"0.1"``) with Vanilla as
    ``"vanilla"``; the other tables by method. A method a table does not expect
    becomes an extra row named after it.
    """
    method = str(config.get("method"))
    if number in SWITCH_TABLES and method in ("vanilla", "ours"):
        if method == "vanilla":
            return BASELINE_SWITCHES
        return switches_key(config.get("hfd"), config.get("bsd_region"), config.get("bsd_pixel"))
    if number in SENSITIVITY and method == "ours":
        return format(float(config[SENSITIVITY[number][0]]), "g")
    return method


def baseline_key(number: str) -> str:
    """Row key of the Vanilla row in layout ``number``."""
    return BASELINE_SWITCHES if number in SWITCH_TABLES else "vanilla"


def label_columns(number: str) -> list[str]:
    """Header of the row-label columns, as in the paper."""
    if number == "4":
        return ["L_s", "L_HFD", "L_BSD"]
    if number == "5":
        return ["L_R", "L_P"]
    return [SENSITIVITY[number][1]] if number in SENSITIVITY else ["Method"]


def _mark(flag: str) -> str:
    return "✓" if flag == "1" else "✗"


def row_labels(number: str, key: str) -> list[str]:
    """Row-label cells for ``key`` (one per :func:`label_columns` entry)."""
    width = len(label_columns(number))
    if number in SWITCH_TABLES and key.startswith("hfd="):
        hfd, region, pixel = (part.split("=")[1] for part in key.split())
        if number == "5":
            return [_mark(region), _mark(pixel) + (" (+HFD)" if hfd == "1" else "")]
        bsd = _mark(region) if region == pixel else ("L_R only" if region == "1" else "L_P only")
        return ["✓", _mark(hfd), bsd]
    if number in SENSITIVITY and key != "vanilla":
        label = repr(float(key)) if _sort_key(key)[0] == 0 else key
    else:
        label = METHODS.get(key, key)
    return [label] + [""] * (width - 1)


def _sort_key(key: str) -> tuple[int, float, str]:
    try:
        return (0, float(key), key)
    except ValueError:
        return (1, 0.0, key)


def order_rows(number: str, keys: Sequence[str], paper_keys: Sequence[str]) -> list[str]:
    """The paper's rows (Vanilla first), then the measured extras in numeric/alphabetic order."""
    first = [baseline_key(number)] + [k for k in paper_keys if k != baseline_key(number)]
    if number not in SENSITIVITY and number not in SWITCH_TABLES:
        first = [baseline_key(number)] + [k for k in METHODS if k != "vanilla" and k in set(paper_keys) | set(keys)]
    extras = sorted((k for k in set(keys) if k not in first), key=_sort_key)
    return list(dict.fromkeys(first + extras))


def assign_rows(trials: pd.DataFrame, number: str) -> pd.DataFrame:
    """Add the ``row`` key column of layout ``number`` to measured trials."""
    keys = [row_key(number, config) for config in trials.to_dict("records")]
    return trials.assign(row=keys)


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
              "n_unfinished": int((cell["status"] == UNFINISHED).sum())}
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


def _interval(stat: Mapping[str, Any]) -> str:
    """`` [lo, hi]*`` for a cell with an interval, ``*`` when it excludes 0."""
    if math.isnan(stat["ci_low"]):
        return ""
    significant = stat["ci_low"] > 0 or stat["ci_high"] < 0
    return f" [{stat['ci_low']:+.2f}, {stat['ci_high']:+.2f}]" + (SIGNIFICANT if significant else "")


def _empty(stat: Mapping[str, Any] | None) -> str:
    return FAILED_CELL if stat is not None and stat["n_failed"] else MISSING


def format_student(stat: Mapping[str, Any] | None, is_baseline: bool) -> str:
    """``69.57 ± 0.12 (n=3) (+2.03 [+1.10, +2.96]*)``; ``—`` / ``failed`` without finished trials."""
    if stat is None or stat["n"] == 0:
        return _empty(stat)
    text = f"{stat['mean']:.2f}" + (f" ± {stat['std']:.2f} (n={stat['n']})" if stat["n"] > 1 else "")
    if not is_baseline and not math.isnan(stat["gain"]):
        text += f" ({stat['gain']:+.2f}{_interval(stat)})"
    return text + (f" ({stat['n_failed']} failed)" if stat["n_failed"] else "")


def format_delta(stat: Mapping[str, Any] | None, is_baseline: bool) -> str:
    """Δ as ``+2.72 [+1.90, +3.50]*``; ``0.00`` on the Vanilla row."""
    if stat is None or math.isnan(stat["gain"]):
        return _empty(stat) if stat is None or stat["n_failed"] else MISSING
    return "0.00" if is_baseline else f"{stat['gain']:+.2f}{_interval(stat)}"


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
        number: Layout (paper table) number.
        title: Caption line.
        frame: The table as strings, label columns first.
        notes: Legend and footnote lines printed under the table.
        stats: Measured statistics (:func:`summarise`), empty for paper-only tables.
        paper_stats: The paper's recomputed statistics, or ``None``.
    """

    name: str
    number: str
    title: str
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    stats: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=STATS_COLUMNS))
    paper_stats: pd.DataFrame | None = None


def _lookup(stats: pd.DataFrame | None) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    if stats is None:
        return {}
    return {(s["row"], s["cnn"], s["vit"], s["student"]): s for s in stats.to_dict("records")}


def column_names(pairs: Sequence[Pair]) -> dict[tuple[Pair, str], str]:
    """Header of each (pair, student) column; pair names are added only where needed."""
    counts = pd.Series([backbone_name(c) for p in pairs for c in p]).value_counts()
    names = {}
    for pair in pairs:
        pair_name = f"{backbone_name(pair[0])}+{backbone_name(pair[1])}"
        for student, code in (("cnn", pair[0]), ("vit", pair[1])):
            name = backbone_name(code)
            names[pair, student] = f"{name} ({pair_name})" if counts[name] > 1 else name
        names[pair, "delta"] = f"Δ ({pair_name})" if len(pairs) > 1 else "Δ"
    return names


def _cell(stats: Mapping, key: tuple[str, str, str, str], baseline: str) -> str:
    stat = stats.get(key)
    formatter = format_delta if key[3] == "delta" else format_student
    return formatter(stat, key[0] == baseline)


def _frame(number: str, rows: Sequence[str], pairs: Sequence[Pair], measured: Mapping | None,
           paper: Mapping | None, flags: Mapping) -> pd.DataFrame:
    """Assemble the string table: label columns, then per pair cnn, vit, Δ (paper beside each).

    A pair gets measured columns only if it was measured and paper columns only if
    the paper reports it.
    """
    baseline, names = baseline_key(number), column_names(pairs)
    measured_pairs = {k[1:3] for k in measured or {}}
    paper_pairs = {k[1:3] for k in paper or {}}
    records = []
    for key in rows:
        record = dict(zip(label_columns(number), row_labels(number, key)))
        for pair in pairs:
            for student in ("cnn", "vit", "delta"):
                cell_key = (key, *pair, student)
                if measured is not None and (pair in measured_pairs or not measured_pairs):
                    record[names[pair, student]] = _cell(measured, cell_key, baseline)
                if paper is not None and pair in paper_pairs:
                    flag = PAPER_FLAG if cell_key in flags else ""
                    record[names[pair, student] + " (paper)"] = _cell(paper, cell_key, baseline) + flag
        records.append(record)
    return pd.DataFrame(records)


def legend(stats: pd.DataFrame, has_measured: bool) -> list[str]:
    """Legend lines explaining the cell format actually used."""
    lines = [("mIoU (%) at the last epoch; (±x.xx) = gain over Vanilla of the same pair; "
              "Δ = sum of both students' gains (recomputed from the numbers).")]
    if has_measured:
        lines.append("Several seeds: mean ± std (n = finished seeds). — = no finished trial; "
                     "failed = every trial of the cell failed (error.txt).")
    if stats["ci_low"].notna().any():
        lines.append(f"[lo, hi] = 95 % t-interval of the gain, seeds paired by seed number; "
                     f"{SIGNIFICANT} = the interval excludes 0.")
    return lines


def _missing_vanilla(stats: pd.DataFrame, baseline: str) -> list[str]:
    """A note per measured pair with no finished Vanilla trial (its gains cannot be computed)."""
    notes = []
    for (cnn, vit), group in stats.groupby(["cnn", "vit"], sort=False):
        base = group[(group["row"] == baseline) & (group["n"] > 0)]
        if base.empty:
            notes.append(f"No finished Vanilla trial for {backbone_name(cnn)}+{backbone_name(vit)}: "
                         f"gains and Δ not computed.")
    return notes


def render_table(name: str, number: str, title: str, trials: pd.DataFrame | None,
                 paper: PaperTable | None, show_paper: bool = False) -> Rendered:
    """Regenerate one table in the layout of paper table ``number``.

    Args:
        name: File stem for the outputs.
        number: Layout number ``"1"``..``"9"``.
        title: Caption.
        trials: Measured trials (any status) with config columns, or ``None`` for
            the paper's numbers alone.
        paper: The paper table giving the layout's rows, or ``None``.
        show_paper: Show the paper's numbers beside the measured ones.
    """
    baseline = baseline_key(number)
    shown = paper if paper is not None and (show_paper or trials is None) else None
    measured = summarise(assign_rows(trials, number), baseline) if trials is not None else None
    paper_stats = summarise(shown.trials, baseline) if shown is not None else None
    flags = paper_flags(shown, paper_stats) if shown is not None else {}
    keys = [] if measured is None else list(measured["row"])
    rows = order_rows(number, keys, [k for k, _ in paper.rows] if paper is not None else [])
    measured_pairs = [] if measured is None else list(zip(measured["cnn"], measured["vit"]))
    paper_pairs = shown.pairs if shown is not None else []
    # Measured pairs first (in the paper's order where the paper has them), paper-only pairs last.
    pairs = list(dict.fromkeys([p for p in paper_pairs if p in measured_pairs] + measured_pairs + paper_pairs))
    frame = _frame(number, rows, pairs, _lookup(measured) if measured is not None else None,
                   _lookup(paper_stats) if shown is not None else None, flags)
    if measured is None:
        frame = frame.rename(columns=lambda c: c.removesuffix(" (paper)"))
    notes = legend(pd.concat([s for s in (measured, paper_stats) if s is not None]), measured is not None)
    notes += _missing_vanilla(measured, baseline) if measured is not None else []
    if flags:
        notes.append(f"{PAPER_FLAG} = the paper's printed gain (subscript or Δ) differs from its own numbers "
                     f"by more than {FLAG_TOLERANCE}:")
    notes += [f"{PAPER_FLAG} {text}" for text in flags.values()]
    return Rendered(name, number, title, frame, notes,
                    measured if measured is not None else pd.DataFrame(columns=STATS_COLUMNS), paper_stats)


def _latex_text(line: str) -> str:
    """Escape LaTeX specials in a note line."""
    return re.sub(r"([&%$#_{}])", r"\\\1", line)


def to_text(table: Rendered, fmt: str) -> str:
    """The table in ``md``, ``latex`` or ``csv`` (pandas' own writers), notes included but in csv."""
    if fmt == "md":
        body = table.frame.to_markdown(index=False, disable_numparse=True)
        return "\n".join([f"### {table.title}", "", body, "", *table.notes, ""])
    if fmt == "latex":
        body = table.frame.to_latex(index=False, escape=True, caption=table.title, label=f"tab:{table.name}")
        return "\n".join([body, *(_latex_text(n) + "\\par" for n in table.notes), ""])
    if fmt == "csv":
        return table.frame.to_csv(index=False)
    raise ValueError(f"unknown format {fmt!r}; allowed: md, latex, csv")
