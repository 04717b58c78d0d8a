"""Write trial folders the way Ray Tune lays them out, for the analysis tests.

Ray writes ``params.json`` (``json.dump(config, indent=2, sort_keys=True)``), one
``result.json`` line per ``tune.report`` (metrics plus Ray's bookkeeping keys and
the config), ``error.txt`` when the trainable raised, and pickles
(``params.pkl``, ``tuner.pkl``) that the analysis must never open; the pickles here
are deliberately not valid pickles.
"""

from __future__ import annotations

import json
import math
import runpy
from functools import cache
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
# The table each sweep script declares, by the id the fixtures use.
SCRIPTS = {"1": "methods", "methods": "methods", "4": "components", "5": "bsd_components", "6": "pairs",
           "7": "alpha_sensitivity", "8": "beta_sensitivity", "9": "gamma_sensitivity"}

CLASSES = ["background", "square", "disc"]
_DATE = "2025-11-25_17-31-00"
# Final (CNN, ViT) mIoU of seeds 0, 1, 2 in the Table 7 fixture.
VANILLA = [(60.0, 70.0), (61.0, 70.5), (62.0, 71.0)]
ALPHA_01 = [(61.0, 70.2), (62.5, 70.1), (63.0, 71.3)]


@cache
def declared_layout(table: str) -> str:
    """The ``layout`` a sweep script writes into params.json for ``table`` (JSON text)."""
    return runpy.run_path(str(REPO / "sweeps" / f"{SCRIPTS[table]}.py"))["SPEC"].table.to_json()


def config(table: str, method: str, seed: int, *, cnn: str = "mobilenet_v2", vit: str = "mit_b1",
           dataset: str = "voc", epochs: int = 2, **overrides: Any) -> dict[str, Any]:
    """A trial config with every key the sweeps set, the sweep's declared table (``layout``)."""
    layout = declared_layout(table)
    base = {"table": json.loads(layout)["id"], "layout": layout, "sweep": "test_sweep", "method": method,
            "cnn": cnn, "vit": vit,
            "alpha": 1.0, "beta": 0.1, "gamma": 1.0, "temperature": 1.0, "hfd": False,
            "bsd_region": True, "bsd_pixel": True, "seed": seed, "dataset": dataset, "preset": "smoke",
            "epochs": epochs, "data_root": None}
    return {**base, **overrides}


def report(cfg: dict[str, Any], trial_id: str, epoch: int, miou_cnn: float, miou_vit: float,
           elapsed: float) -> dict[str, Any]:
    """One ``result.json`` record as Ray writes it after ``tune.report``."""
    teaches = cfg["method"] == "ours"
    return {
        "epoch": epoch, "miou_cnn": miou_cnn, "miou_vit": miou_vit,
        "iou_cnn": [miou_cnn + 1, miou_cnn - 1, math.nan], "iou_vit": [miou_vit + 1, miou_vit - 1, math.nan],
        "class_names": CLASSES, "eval_protocol": "whole",
        "ce_cnn": 1.0 / epoch, "ce_vit": 0.9 / epoch, "hfd_cnn": 0.0, "hfd_vit": 0.0,
        "bsd_r_cnn": 0.2, "bsd_r_vit": 0.1, "bsd_p_cnn": 0.3, "bsd_p_vit": 0.2,
        "cnn_teaches_pixels": 0.3 + 0.05 * epoch if teaches else None,
        "cnn_teaches_regions": 0.4 - 0.05 * epoch if teaches else None,
        "timestamp": 1764091860 + epoch, "checkpoint_dir_name": f"checkpoint_{epoch - 1:06d}",
        "done": False, "training_iteration": epoch, "trial_id": trial_id, "date": _DATE,
        "time_this_iter_s": 1.5, "time_total_s": elapsed, "pid": 4242, "hostname": "node",
        "node_ip": "127.0.0.1", "config": cfg, "time_since_restore": elapsed,
        "iterations_since_restore": epoch,
    }


def write_trial(experiment: Path, index: int, cfg: dict[str, Any], final: tuple[float, float], *,
                reports: int | None = None, failed: bool = False, truncate_last: bool = False) -> Path:
    """Write one trial folder.

    Args:
        experiment: The experiment folder (created if needed).
        index: Trial index within the experiment.
        cfg: The trial config.
        final: ``(miou_cnn, miou_vit)`` of the last epoch; earlier epochs are 5 lower.
        reports: Number of epoch reports written (default: all ``epochs``).
        failed: Write Ray's ``error.txt`` after the reports.
        truncate_last: Cut the last line in half, as a killed writer leaves it.
    """
    trial_id = f"a1b2c_{index:05d}"
    tag = f"{index}_alpha={cfg['alpha']:.4f},method={cfg['method']},seed={cfg['seed']}"
    trial_dir = experiment / f"trial_fn_{trial_id}_{tag}_{_DATE}"
    trial_dir.mkdir(parents=True)
    (trial_dir / "params.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
    (trial_dir / "params.pkl").write_bytes(b"not a pickle")
    count = cfg["epochs"] if reports is None else reports
    lines = []
    for epoch in range(1, count + 1):
        lag = 5.0 * (cfg["epochs"] - epoch)
        lines.append(json.dumps(report(cfg, trial_id, epoch, final[0] - lag, final[1] - lag, 1.5 * epoch)))
    if truncate_last and lines:
        lines[-1] = lines[-1][: len(lines[-1]) // 2]
    (trial_dir / "result.json").write_text("".join(line + "\n" for line in lines))
    if failed:
        (trial_dir / "error.txt").write_text("Failure # 1 (occurred at 2025-11-25_17-32-00)\n"
                                             "ray::ImplicitFunc.train() ...\nFloatingPointError: loss is NaN\n")
    return trial_dir


def write_experiment_files(experiment: Path) -> None:
    """Ray's experiment-level files, which the analysis must ignore."""
    experiment.mkdir(parents=True, exist_ok=True)
    (experiment / f"experiment_state-{_DATE}.json").write_text(json.dumps({"trial_data": []}))
    (experiment / f"basic-variant-state-{_DATE}.json").write_text("{}")
    (experiment / "tuner.pkl").write_bytes(b"not a pickle")
