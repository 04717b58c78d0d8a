"""How a table's cells, headers and notes are written: numbers as text, then md, LaTeX or csv."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from analysis.tables import Rendered

BACKBONES = {"mobilenet_v2": "MobileNetV2", "resnet50": "ResNet-50", "resnet18": "ResNet-18",
             "resnet34": "ResNet-34", "resnet101": "ResNet-101"}
DATASETS = {"voc": "PASCAL VOC 2012", "cityscapes": "Cityscapes", "camvid": "CamVid"}
MISSING, FAILED_CELL, INVALID_CELL = "—", "failed", "invalid"
SIGNIFICANT, PAPER_FLAG = "*", "†"

Pair = tuple[str, str]


def backbone_name(code: str) -> str:
    """Printable backbone name: ``mobilenet_v2`` → ``MobileNetV2``, ``mit_b1`` → ``MiT-B1``."""
    if code in BACKBONES:
        return BACKBONES[code]
    return f"MiT-B{code[5:]}" if code.startswith("mit_b") else code


def _interval(stat: Mapping[str, Any]) -> str:
    """`` [lo, hi]*`` for a cell with an interval, ``*`` when it excludes 0."""
    if math.isnan(stat["ci_low"]):
        return ""
    significant = stat["ci_low"] > 0 or stat["ci_high"] < 0
    return f" [{stat['ci_low']:+.2f}, {stat['ci_high']:+.2f}]" + (SIGNIFICANT if significant else "")


def _empty(stat: Mapping[str, Any] | None) -> str:
    """A cell without a number: ``invalid`` (impossible results), ``failed`` or ``—``."""
    if stat is not None and stat.get("n_invalid"):
        return INVALID_CELL
    return FAILED_CELL if stat is not None and stat["n_failed"] else MISSING


def _set_aside(stat: Mapping[str, Any]) -> str:
    """`` (1 failed)``, `` (2 invalid)``: the trials of a cell that its number leaves out."""
    counts = [(stat["n_failed"], "failed"), (stat.get("n_invalid") or 0, "invalid")]
    return "".join(f" ({n} {what})" for n, what in counts if n)


def format_student(stat: Mapping[str, Any] | None, is_baseline: bool) -> str:
    """``69.57 ± 0.12 (n=3) (+2.03 [+1.10, +2.96]*)``; ``—`` / ``failed`` without finished trials."""
    if stat is None or stat["n"] == 0:
        return _empty(stat)
    text = f"{stat['mean']:.2f}" + (f" ± {stat['std']:.2f} (n={stat['n']})" if stat["n"] > 1 else "")
    if not is_baseline and not math.isnan(stat["gain"]):
        text += f" ({stat['gain']:+.2f}{_interval(stat)})"
    return text + _set_aside(stat)


def format_delta(stat: Mapping[str, Any] | None, is_baseline: bool) -> str:
    """Δ as ``+2.72 [+1.90, +3.50]*``; ``0.00`` on the Vanilla row."""
    if stat is None or math.isnan(stat["gain"]):
        return _empty(stat) if stat is None or stat["n_failed"] or stat.get("n_invalid") else MISSING
    return "0.00" if is_baseline else f"{stat['gain']:+.2f}{_interval(stat)}"


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


def legend(stats: pd.DataFrame, has_measured: bool) -> list[str]:
    """Legend lines explaining the cell format actually used."""
    lines = [("mIoU (%) at the last epoch; (±x.xx) = gain over Vanilla of the same pair; "
              "Δ = sum of both students' gains (recomputed from the numbers).")]
    if has_measured:
        lines.append("Several seeds: mean ± std (n = finished seeds). — = no finished trial; "
                     "failed = every trial of the cell failed (error.txt).")
    if has_measured and "n_invalid" in stats and stats["n_invalid"].fillna(0).any():
        lines.append("invalid = a trial's result.json holds no usable mIoU (not a finite number, or the file is "
                     "empty or corrupt; each file is named on stderr); such trials count nowhere.")
    if stats["ci_low"].notna().any():
        lines.append(f"[lo, hi] = 95 % t-interval of the gain, seeds paired by seed number; "
                     f"{SIGNIFICANT} = the interval excludes 0.")
    return lines


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
