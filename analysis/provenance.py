"""Whether one table mixes trials of different provenance: code commit, dataset, CPU kernels or device.

Each trial's ``result.json`` carries its provenance in the first report of every start
(``cotrain.provenance``); this reads it back without Ray and names the rows that differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from analysis.results import read_result_lines
from cotrain.provenance import KEY, parse
from cotrain.tables import TableSpec

NOT_RECORDED = "not recorded"


def trial_provenances(trial_dir: str | Path) -> list[dict[str, Any]]:
    """The provenance of every start of one trial (one, unless it was resumed), oldest first."""
    records = read_result_lines(Path(trial_dir) / "result.json")
    return [found for record in records if (found := parse(record.get(KEY))) is not None]


def compared(provenance: dict[str, Any] | None) -> dict[str, str]:
    """What must agree within a table, as text: commit (dirty or not), data, CPU capability, device."""
    if provenance is None:
        return dict.fromkeys(("commit", "data", "cpu capability", "device"), NOT_RECORDED)
    commit = str(provenance.get("git_commit") or "no git checkout")[:10]
    dirty = " (dirty)" if provenance.get("git_dirty") else ""
    digest = str(provenance.get("data_sha256") or "?")[:12]
    device = provenance.get("gpu") or provenance.get("device") or "?"
    return {"commit": commit + dirty, "data": f"{provenance.get('data_files')} files {digest}",
            "cpu capability": str(provenance.get("cpu_capability")), "device": str(device)}


def row_name(spec: TableSpec, trial: dict[str, Any], with_seed: bool) -> str:
    """A trial as the table shows it: its row's label cells, and its seed when the table has several."""
    label = " ".join(cell for cell in spec.labels(spec.row_key(trial)) if cell) or spec.row_key(trial)
    return f"{label} seed {trial.get('seed')}" if with_seed else label


def mixed_provenance(name: str, spec: TableSpec, trials: pd.DataFrame) -> str | None:
    """One line naming what differs and which rows have each value; None when the table is uniform."""
    found: dict[str, dict[str, list[str]]] = {}
    with_seed = trials["seed"].nunique() > 1 if "seed" in trials else False
    for trial in trials.to_dict("records"):
        label = row_name(spec, trial, with_seed)
        for start in trial_provenances(trial["trial_dir"]) or [None]:
            for key, value in compared(start).items():
                rows = found.setdefault(key, {}).setdefault(value, [])
                if label not in rows:
                    rows.append(label)
    parts = [f"{key} " + " vs ".join(f"{value} ({', '.join(rows)})" for value, rows in values.items())
             for key, values in found.items() if len(values) > 1]
    return f"{name} mixes provenances: {'; '.join(parts)}" if parts else None
