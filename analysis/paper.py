"""The paper's Tables 1-9, transcribed in ``paper_results.csv``.

Each CSV row is one printed number: ``student`` is ``cnn``, ``vit`` or ``delta``;
``miou`` is blank for Δ; ``printed_gain`` is the subscript (or Δ) exactly as the
paper prints it. Gains are recomputed from the numbers elsewhere; the printed ones
are kept only to flag where the paper disagrees with itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.results import FINISHED
from cotrain.tables import ANY_DATASET, TableSpec

PAPER_CSV = Path(__file__).with_name("paper_results.csv")
TABLE_NUMBERS = tuple(str(n) for n in range(1, 10))
CAPTIONS = {
    "1": "Comparison with the SoTA KD methods", "2": "Comparison with the SoTA KD methods",
    "3": "Comparison with the SoTA KD methods", "4": "Ablation of HFD and BSD",
    "5": "Ablation of the two components of BSD", "6": "Comparison with Vanilla for other pairs",
    "7": "Sensitivity of α", "8": "Sensitivity of β", "9": "Sensitivity of γ",
}

Pair = tuple[str, str]


@dataclass(frozen=True)
class PaperTable:
    """One paper table.

    Attributes:
        number: ``"1"``..``"9"``.
        dataset: Dataset code (``voc``, ``cityscapes``, ``camvid``).
        rows: ``(setting key, printed row label)`` in the paper's order.
        pairs: ``(cnn, vit)`` pairs in the paper's column order.
        trials: One pseudo-trial per row and pair (seed 0, finished), in the
            layout :func:`analysis.results.load_results` gives measured trials,
            plus the ``row`` key column.
        printed: Printed gain strings keyed by ``(row, cnn, vit, student)``.
    """

    number: str
    dataset: str
    rows: list[tuple[str, str]]
    pairs: list[Pair]
    trials: pd.DataFrame
    printed: dict[tuple[str, str, str, str], str]


def read_paper_csv(path: Path = PAPER_CSV) -> pd.DataFrame:
    """Read the transcription with every text column kept as text (``"1"`` stays ``"1"``)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["miou"] = pd.to_numeric(frame["miou"].replace("", None))
    return frame


def _pseudo_trials(table: pd.DataFrame) -> pd.DataFrame:
    """Pivot one table's cnn/vit rows into trial rows with ``miou_cnn`` and ``miou_vit``."""
    students = table[table["student"].isin(["cnn", "vit"])]
    wide = students.pivot_table(index=["setting", "cnn", "vit"], columns="student", values="miou", sort=False)
    wide = wide.rename(columns={"cnn": "miou_cnn", "vit": "miou_vit"}).reset_index()
    wide = wide.rename(columns={"setting": "row"}).rename_axis(columns=None)
    return wide.assign(seed=0, status=FINISHED, dataset=table["dataset"].iloc[0])


def paper_table(number: str, frame: pd.DataFrame | None = None) -> PaperTable:
    """Return paper Table ``number`` from the transcription."""
    frame = read_paper_csv() if frame is None else frame
    table = frame[frame["table"] == number]
    if table.empty:
        raise KeyError(f"paper table {number!r} is not transcribed; allowed: {', '.join(TABLE_NUMBERS)}")
    rows = list(dict.fromkeys(zip(table["setting"], table["row"])))
    pairs = list(dict.fromkeys(zip(table["cnn"], table["vit"])))
    printed = {
        (r.setting, r.cnn, r.vit, r.student): r.printed_gain
        for r in table.itertuples() if r.printed_gain != ""
    }
    return PaperTable(number, table["dataset"].iloc[0], rows, pairs, _pseudo_trials(table), printed)


def paper_tables() -> dict[str, PaperTable]:
    """All nine paper tables keyed by number."""
    frame = read_paper_csv()
    return {n: paper_table(n, frame) for n in TABLE_NUMBERS}


def paper_spec(paper: PaperTable) -> TableSpec:
    """The paper table as a declared table of its own, rows labelled as the paper prints them."""
    rows = tuple((key, (label,)) for key, label in paper.rows)
    return TableSpec(paper.number, CAPTIONS[paper.number], label_columns=("Setting",), rows=rows,
                     paper={ANY_DATASET: paper.number})
