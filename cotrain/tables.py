"""A results table, declared once by the sweep that fills it (imports no torch and no Ray).

A sweep script declares its table (``TableSpec``): id, caption, the config keys that tell its
rows apart and each row's label cells. The sweep writes the declaration into every trial's
``params.json`` (key ``layout``), and ``analysis/make_tables.py`` renders any declared table
from the trials alone, with the paper's numbers beside them where the paper has that table.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

LAYOUT_KEY = "layout"  # the params.json key that carries the declaration (never a config key)
BASELINE_ROW = "vanilla"  # the row every gain and Δ is measured against
ANY_DATASET = "*"


def format_value(value: Any) -> str:
    """A config value as it appears in a row key: switches as 0/1, numbers as ``%g`` (``1.0`` -> ``1``)."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float)) and math.isfinite(value):
        return format(float(value), "g")
    return str(value)


@dataclass(frozen=True)
class TableSpec:
    """One table of results.

    Attributes:
        id: names the output file (``"7"`` -> ``table7``, ``"toy"`` -> ``table_toy``).
        caption: the table's topic, e.g. ``"Sensitivity of α"``.
        varies: config keys whose values tell the rows apart (``("method",)``: one row per method).
            The Vanilla trials are always the ``"vanilla"`` row, the reference of every gain.
        label_columns: header of the row-label columns.
        rows: ``(row key, label cells)`` in display order; a measured row not declared here is
            appended, labelled by its key (the Vanilla row: ``Vanilla``).
        paper: dataset -> the paper table whose numbers are shown beside the measured ones
            (``"*"``: whatever the dataset); empty when the paper has no such table.
    """

    id: str
    caption: str
    varies: tuple[str, ...] = ("method",)
    label_columns: tuple[str, ...] = ("Method",)
    rows: tuple[tuple[str, tuple[str, ...]], ...] = ()
    paper: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id or not self.varies or not self.label_columns:
            raise ValueError(f"table {self.id!r}: id, varies and label_columns must not be empty")
        for key, labels in self.rows:
            if len(labels) != len(self.label_columns):
                raise ValueError(f"table {self.id!r}, row {key!r}: {len(labels)} label cells for "
                                 f"{len(self.label_columns)} label columns {list(self.label_columns)}")

    def row_key(self, config: Mapping[str, Any]) -> str:
        """The row a trial config belongs to: ``"vanilla"``, the method, ``"0.1"`` or ``"hfd=1 bsd_pixel=0"``."""
        if config.get("method") == BASELINE_ROW:
            return BASELINE_ROW
        values = [format_value(config.get(key)) for key in self.varies]
        if len(values) == 1:
            return values[0]
        return " ".join(f"{key}={value}" for key, value in zip(self.varies, values))

    def labels(self, key: str) -> tuple[str, ...]:
        """The label cells of row ``key``: declared, else the key in the first column."""
        declared = dict(self.rows).get(key)
        if declared is not None:
            return declared
        return ("Vanilla" if key == BASELINE_ROW else key,) + ("",) * (len(self.label_columns) - 1)

    def paper_table(self, dataset: str) -> str | None:
        """The paper table this one reproduces on ``dataset``, if any."""
        return self.paper.get(dataset, self.paper.get(ANY_DATASET))

    def with_rows(self, rows: list[tuple[Mapping[str, Any], tuple[str, ...]]]) -> TableSpec:
        """This table with rows declared by example: ``(trial config, label cells)`` in display order."""
        declared = tuple((self.row_key(config), tuple(labels)) for config, labels in rows)
        return TableSpec(self.id, self.caption, self.varies, self.label_columns, declared, self.paper)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (lists for tuples)."""
        values = asdict(self)
        values["paper"] = dict(self.paper)
        return values

    def to_json(self) -> str:
        """As stored in ``params.json``: one JSON string, so that trackers that log params (MLflow) see
        one value rather than keys built from its contents."""
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | str) -> TableSpec:
        """Inverse of :meth:`to_dict` (and of :meth:`to_json`)."""
        if isinstance(values, str):
            values = json.loads(values)
        rows = tuple((str(key), tuple(labels)) for key, labels in values.get("rows", ()))
        return cls(str(values["id"]), str(values["caption"]), tuple(values.get("varies", ("method",))),
                   tuple(values.get("label_columns", ("Method",))), rows, dict(values.get("paper", {})))
