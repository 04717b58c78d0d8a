"""Read Ray Tune experiment folders into pandas frames, without importing Ray.

A results root holds one experiment folder per sweep; each trial folder inside it
has ``params.json`` (the flat trial config) and ``result.json`` (one JSON object
per epoch report). Pickles Ray writes beside them are never opened.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cotrain.tables import LAYOUT_KEY, TableSpec

FINISHED, FAILED, UNFINISHED, INVALID = "finished", "failed", "unfinished", "invalid"
MIOU_KEYS = ("miou_cnn", "miou_vit")

# The leading columns of ``trials``; every other scalar config key (a method's own options included,
# whatever the method) follows them, so a new option needs no edit here.
CONFIG_KEYS = (
    "table", "sweep", "method", "cnn", "vit", "alpha", "beta", "gamma", "temperature",
    "hfd", "bsd_region", "bsd_pixel", "seed", "dataset", "preset", "epochs",
)
# The leading columns of ``history``; every other number a report names ``*_cnn`` / ``*_vit`` (each
# method's loss terms: a method's ``term_names`` follow that convention) follows them.
HISTORY_KEYS = (
    "epoch", "miou_cnn", "miou_vit", "cnn_teaches_pixels", "cnn_teaches_regions",
    "ce_cnn", "ce_vit", "hfd_cnn", "hfd_vit", "bsd_r_cnn", "bsd_r_vit", "bsd_p_cnn",
    "bsd_p_vit", "kd_cnn", "kd_vit", "time_total_s",
)
PER_STUDENT = ("_cnn", "_vit")
_TRIAL_ID = re.compile(r"([0-9a-f]{5}_\d{5})")


@dataclass(frozen=True)
class Results:
    """Everything read from one results root.

    Attributes:
        trials: One row per trial: ``experiment``, ``trial_dir``, ``trial_id``,
            ``status`` (finished/failed/unfinished/invalid), ``problem`` (why it is invalid: the file and
            what is wrong with it, else None), ``last_epoch``, final ``miou_cnn``/``miou_vit``, the
            :data:`CONFIG_KEYS`, ``table_id`` and ``layout`` (the declared table as JSON text, or None).
        history: One row per readable epoch report: ``experiment``, ``trial_id``
            and the :data:`HISTORY_KEYS` present.
        iou: One row per trial and class of the final report: ``experiment``,
            ``trial_id``, ``class_name``, ``iou_cnn``, ``iou_vit``.
    """

    trials: pd.DataFrame
    history: pd.DataFrame
    iou: pd.DataFrame


def read_result_lines(path: Path) -> list[dict[str, Any]]:
    """Parse ``result.json``; a line that is not a JSON object is skipped with a warning.

    Ray appends one line per report, so a trial killed mid-write leaves a truncated
    last line; the reports before it are still valid.
    """
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            warnings.warn(f"{path}:{number}: skipped a line that is not valid JSON (truncated write?)", stacklevel=2)
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_params(trial_dir: Path, records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Return the trial config from ``params.json``, else from the last report's ``config``."""
    path = trial_dir / "params.json"
    if path.is_file():
        try:
            return flatten_cell(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError:
            warnings.warn(f"{path}: not valid JSON; trying the config inside result.json", stacklevel=2)
    for record in reversed(records):
        if isinstance(record.get("config"), dict):
            return flatten_cell(record["config"])
    return None


def flatten_cell(config: dict[str, Any]) -> dict[str, Any]:
    """Sweeps grid over whole table cells: Ray stores them as a ``cell`` dict of overrides."""
    cell = config.get("cell")
    return {**config, **cell} if isinstance(cell, dict) else config


def trial_status(trial_dir: Path, config: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """Classify a trial: a last epoch equal to ``epochs`` means finished, else ``error.txt`` means failed.

    Finished first: Ray also writes ``error.txt`` for a failure it recovered from (a lost node).
    """
    epochs = config.get("epochs")
    if records and epochs is not None and records[-1].get("epoch") == int(epochs):
        return FINISHED
    if (trial_dir / "error.txt").exists():
        return FAILED
    return UNFINISHED


def declared_table(config: dict[str, Any]) -> TableSpec | None:
    """The table the trial's sweep declared (``layout`` in params.json), or ``None``."""
    layout = config.get(LAYOUT_KEY)
    return TableSpec.from_dict(layout) if isinstance(layout, (dict, str)) and layout else None


def table_id(config: dict[str, Any], spec: TableSpec | None = None) -> str:
    """The table a trial belongs to: the paper table its declared table (``spec``, read from the config
    when not given) reproduces on the trial's dataset (``"1"``..``"9"``), else the declared id
    (``"methods"`` on the built-in data)."""
    spec = spec or declared_table(config)
    if spec is None:
        return str(config.get("table") or "")
    return spec.paper_table(str(config.get("dataset", ""))) or spec.id


def _number(value: Any) -> float:
    """A JSON number as float; ``None``, non-numbers and non-finite numbers (``Infinity``, ``NaN``) become NaN."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if number and math.isfinite(value) else math.nan


def _report_lines(trial_dir: Path, name: str) -> int:
    """Data lines of ``result.json`` or ``progress.csv`` (its header left out); 0 when absent."""
    path = trial_dir / name
    try:
        lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return 0
    return len(lines) - (1 if name == "progress.csv" and lines else 0)


def invalid_reason(trial_dir: Path, records: list[dict[str, Any]], status: str) -> str | None:
    """What makes a trial's results impossible, naming the file; None when they are usable.

    An mIoU that is not a finite number (``Infinity``, ``NaN``, a string, ``null``) in the last report, a
    finished trial without one, a ``result.json`` none of whose lines can be read, or an empty one
    while ``progress.csv`` holds reports (they were lost). An empty ``result.json`` alone is a trial
    that has not reported yet (Ray creates the file when the trial starts).
    """
    path = trial_dir / "result.json"
    if not records:
        if _report_lines(trial_dir, "result.json"):
            return f"{path}: no line is a readable report (corrupt)"
        written = _report_lines(trial_dir, "progress.csv")
        return f"{path}: empty, while progress.csv holds {written} report(s)" if written > 0 else None
    last = records[-1]
    for key in MIOU_KEYS:
        value = last.get(key)
        if key not in last:
            if status == FINISHED:
                return f"{path}: the last report (epoch {last.get('epoch')}) has no {key}"
            continue
        if math.isnan(_number(value)):
            return f"{path}: {key}={value!r} in the last report (epoch {last.get('epoch')}) is not a finite number"
    return None


def _trial_id(trial_dir: Path, records: list[dict[str, Any]]) -> str:
    """Ray's trial id from the reports, else from the folder name."""
    for record in reversed(records):
        if record.get("trial_id"):
            return str(record["trial_id"])
    match = _TRIAL_ID.search(trial_dir.name)
    return match.group(1) if match else trial_dir.name


def load_trial(trial_dir: Path, experiment: str) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """Read one trial folder.

    Returns:
        ``(row, records)`` where ``row`` is the trial's summary and ``records`` its
        readable reports, or ``None`` when no config can be found.
    """
    records = read_result_lines(trial_dir / "result.json")
    config = read_params(trial_dir, records)
    if config is None:
        warnings.warn(f"{trial_dir}: no params.json and no config in result.json; skipped", stacklevel=2)
        return None
    last = records[-1] if records else {}
    spec = declared_table(config)
    status = trial_status(trial_dir, config, records)
    problem = invalid_reason(trial_dir, records, status)
    row = {key: config.get(key) for key in CONFIG_KEYS}
    row.update({k: v for k, v in config.items() if k not in row and _is_scalar(v)})
    row.update(
        # A sweep may span several experiment folders (methods: Vanilla first, then the KD methods).
        experiment=str(config.get("sweep") or experiment), trial_dir=str(trial_dir),
        trial_id=_trial_id(trial_dir, records),
        status=INVALID if problem else status, problem=problem, last_epoch=last.get("epoch"),
        miou_cnn=_number(last.get("miou_cnn")), miou_vit=_number(last.get("miou_vit")),
        table=str(config.get("table", "")), table_id=table_id(config, spec),
        layout=spec.to_json() if spec is not None else None,
    )
    return row, records


def is_trial_dir(path: Path) -> bool:
    """A trial folder holds Ray's ``params.json`` or ``result.json``."""
    return path.is_dir() and ((path / "params.json").is_file() or (path / "result.json").is_file())


def find_experiments(root: Path) -> list[Path]:
    """Experiment folders under ``root``: those holding at least one trial folder.

    ``root`` may itself be one experiment folder.
    """
    if any(is_trial_dir(p) for p in root.iterdir()):
        return [root]
    return [p for p in sorted(root.iterdir()) if p.is_dir() and any(is_trial_dir(t) for t in p.iterdir())]


def whole_history(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reports, preceded by the earlier epochs a resumed trial carried in a report's ``history``.

    Tune may start a resumed trial's ``result.json`` afresh; the training loop then sends the
    epochs before the resume along (see ``cotrain.engine.loop.fit``).
    """
    reported = {r.get("epoch") for r in records}
    carried = {h["epoch"]: h for r in records for h in r.get("history") or []
               if isinstance(h, dict) and h.get("epoch") is not None and h["epoch"] not in reported}
    return [carried[e] for e in sorted(carried)] + records


def _history_rows(row: dict[str, Any], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One history row per report, keeping only the keys the plots use."""
    ids = {"experiment": row["experiment"], "trial_id": row["trial_id"]}
    return [{**ids, **{k: _number(v) for k, v in r.items() if _is_history_key(k, v)}} for r in records]


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _is_history_key(key: str, value: Any) -> bool:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return key in HISTORY_KEYS or (number and key.endswith(PER_STUDENT))


def _columns(rows: list[dict[str, Any]], leading: list[str]) -> list[str]:
    """``leading``, then every other key of the rows in first-seen order."""
    extra = dict.fromkeys(k for row in rows for k in row if k not in leading)
    return [*leading, *extra]


def _iou_rows(row: dict[str, Any], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-class IoU of the final report, NaN where a class is absent from val."""
    last = records[-1] if records else {}
    names = last.get("class_names") or []
    cnn, vit = last.get("iou_cnn") or [], last.get("iou_vit") or []
    ids = {"experiment": row["experiment"], "trial_id": row["trial_id"]}
    return [
        {**ids, "class_name": name, "iou_cnn": _number(cnn[i] if i < len(cnn) else None),
         "iou_vit": _number(vit[i] if i < len(vit) else None)}
        for i, name in enumerate(names)
    ]


def load_results(root: str | Path) -> Results:
    """Read every trial of every experiment under ``root``.

    Raises:
        FileNotFoundError: ``root`` is not a directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory")
    rows, history, iou = [], [], []
    for experiment in find_experiments(root):
        for trial_dir in sorted(p for p in experiment.iterdir() if is_trial_dir(p)):
            loaded = load_trial(trial_dir, experiment.name)
            if loaded is None:
                continue
            row, records = loaded
            rows.append(row)
            history += _history_rows(row, whole_history(records))
            iou += _iou_rows(row, records)
    trials = pd.DataFrame(rows, columns=_columns(rows, [*CONFIG_KEYS, "experiment", "trial_dir", "trial_id", "status",
                                                        "problem", "last_epoch", "miou_cnn", "miou_vit", "table_id",
                                                        "layout"]))
    history = pd.DataFrame(history, columns=_columns(history, ["experiment", "trial_id", *HISTORY_KEYS]))
    return Results(trials, history,
                   pd.DataFrame(iou, columns=["experiment", "trial_id", "class_name", "iou_cnn", "iou_vit"]))
