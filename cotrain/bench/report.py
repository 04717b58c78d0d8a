"""The benchmark's output: the printed table, the CSV, and the step-time cache ``cotrain.estimate`` reads."""
from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from pathlib import Path

from cotrain.bench.settings import COLUMNS, Settings
from cotrain.estimate import CASES, cache_key, read_cache, step_cache_path


def format_table(rows: list[dict]) -> str:
    head = ("case", "step_s_median", "step_s_iqr", "peak_mem_mb", "step_ratio_vs_vanilla", "mem_ratio_vs_vanilla",
            "images_per_s")
    widths = [max(len(h), 13) for h in head]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths)) + "  note"]
    for row in rows:
        cells = [_cell(row.get(h)).rjust(w) for h, w in zip(head, widths)]
        lines.append("  ".join(cells) + ("  " + row["note"] if row.get("note") else ""))
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None or value == "":
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_csv(rows: list[dict], path: Path, settings: Settings, device: str, dtype: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"pair": settings.pair, "size": settings.size, "batch": settings.batch, "device": device, "dtype": dtype}
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*COLUMNS, *extra])
        writer.writeheader()
        for row in rows:
            writer.writerow({**{c: row.get(c, "") for c in COLUMNS}, **extra})


def update_cache(rows: list[dict], settings: Settings, device: str, dtype: str, path: Path | None = None) -> Path:
    """Store this run's median step times (per case) and eval images/s under the run's key, atomically."""
    path = path or step_cache_path()
    cache = read_cache(path)
    entry = {"step_s": {r["case"]: r["step_s_median"] for r in rows if r["case"] in CASES},
             "images_per_s": {r["case"]: r["images_per_s"] for r in rows if r["case"] not in CASES},
             "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    cache[cache_key(settings.pair, settings.size, settings.batch, device, dtype)] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        json.dump(cache, handle, indent=1, sort_keys=True)
    os.replace(handle.name, path)
    return path
