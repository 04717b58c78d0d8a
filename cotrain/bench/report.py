"""The benchmark's output: the printed table, the CSV, and the step-time cache ``cotrain.estimate`` reads."""
from __future__ import annotations

import csv
import math
import time
from pathlib import Path

from cotrain.bench.settings import COLUMNS, Settings
from cotrain.bench.stats import Ratio
from cotrain.estimate import CASES, cache_key, update_entries


def format_table(rows: list[dict]) -> str:
    """The step cases with each ratio to Vanilla and its 95 % interval, then the loader and eval rows."""
    head = ("case", "step_s_median", "step_s_iqr", "peak_mem_mb", "step / vanilla [95 % CI]", "mem_ratio_vs_vanilla",
            "images_per_s")
    widths = [max(len(h), 13) for h in head]
    widths[4] = 26
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths)) + "  note"]
    for row in rows:
        cells = [_cell(row.get(h)) if h != head[4] else _ratio_cell(row) for h in head]
        note = "  " + row["note"] if row.get("note") else ""
        lines.append("  ".join(c.rjust(w) for c, w in zip(cells, widths)) + note)
    rounds = next((r["rounds"] for r in rows if r.get("rounds")), None)
    if rounds:
        lines.append(f"ratios: geometric mean of {rounds} interleaved rounds' ratios, 95 % t-interval "
                     "(two runs agree when their intervals overlap)")
    return "\n".join(lines)


def _ratio_cell(row: dict) -> str:
    if not isinstance(row.get("step_ratio_vs_vanilla"), float):
        return "-"
    return Ratio(row["step_ratio_vs_vanilla"], row.get("step_ratio_ci95_low", math.nan),
                 row.get("step_ratio_ci95_high", math.nan), row.get("rounds", 1)).text()


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


def update_cache(rows: list[dict], settings: Settings, device: str, dtype: str, path: Path | None = None,
                 device_name: str = "") -> Path:
    """Store this run's median step times (per case) and eval images/s under the run's key, atomically."""
    entry = {"step_s": {r["case"]: r["step_s_median"] for r in rows if r["case"] in CASES},
             "images_per_s": {r["case"]: r["images_per_s"] for r in rows if r["case"] not in CASES},
             "measured": time.strftime("%Y-%m-%dT%H:%M:%S"), **({"device_name": device_name} if device_name else {})}
    return update_entries({cache_key(settings.pair, settings.size, settings.batch, device, dtype): entry}, path)
