"""How long a trial will take: the step times ``python -m cotrain.bench`` cached, else a scaled reference.

Read by the sweeps (``--dry-run`` and the start-of-sweep estimate) and written by the benchmark,
which imports the cache helpers from here: a sweep never imports the benchmark.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

# The benchmark's step cases, in its table's order (the cache holds a median step time for each).
CASES = ("cnn_alone", "vit_alone", "vanilla_pair", "hfd", "bsd", "hfd_bsd")
STARTUP_S = 29.0  # fixed cost of a trial through Tune + TorchTrainer (bench_overhead: 28.7-32.7 s, 2 CPU cores)
# Fallback step times when nothing was measured: MobileNetV2 + MiT-B1, batch 4, HFD + BSD.
REFERENCE_STEP_S = {"cpu": (0.5, 128), "cuda": (0.12, 512)}  # (seconds, crop side)


def resolved_device(name: str) -> str:
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def step_cache_path() -> Path:
    """``$COTRAIN_STEP_CACHE``, else ``~/.cache/cotrain/step_times.json``."""
    return Path(os.environ.get("COTRAIN_STEP_CACHE", Path.home() / ".cache" / "cotrain" / "step_times.json"))


def cache_key(pair: str, size: int, batch: int, device: str, dtype: str) -> str:
    return f"{pair}|{size}|{batch}|{device}|{dtype}"


def read_cache(path: Path | None = None) -> dict:
    path = path or step_cache_path()
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def case_of(cfg) -> str:
    """The benchmark case whose step cost stands for ``cfg``'s method.

    Baselines other than Vanilla exchange logits or small feature maps, so pixel-wise-BSD-like
    ``bsd`` is their proxy (offline KD's teacher forwards are not counted).
    """
    if cfg.method == "vanilla":
        return "vanilla_pair"
    if cfg.method != "ours":
        return "bsd"
    bsd = cfg.bsd_region or cfg.bsd_pixel
    return {(True, True): "hfd_bsd", (True, False): "hfd", (False, True): "bsd"}.get((cfg.hfd, bsd), "vanilla_pair")


def _cfg_device_dtype(cfg) -> tuple[str, str]:
    device = resolved_device(cfg.device)
    return device, "bf16" if device == "cuda" and cfg.amp else "fp32"


def cached_entry(cfg, path: Path | None = None) -> dict | None:
    device, dtype = _cfg_device_dtype(cfg)
    return read_cache(path).get(cache_key(f"{cfg.cnn}+{cfg.vit}", cfg.crop_size, cfg.batch_size, device, dtype))


def estimate_step_seconds(cfg, path: Path | None = None) -> float:
    """Measured (cached) step time for ``cfg``, else a reference time scaled by pixels per step."""
    entry = cached_entry(cfg, path)
    if entry and case_of(cfg) in entry.get("step_s", {}):
        return float(entry["step_s"][case_of(cfg)])
    device, _ = _cfg_device_dtype(cfg)
    seconds, side = REFERENCE_STEP_S[device]
    return seconds * (cfg.crop_size / side) ** 2 * cfg.batch_size / 4


def estimate_trial_seconds(cfg, step_s: float | None = None, cache: Path | None = None) -> float:
    """Wall-clock seconds of one trial of ``cfg``: training + evaluation per epoch, plus start-up.

    Steps per epoch = ``len(train set) // (batch_size × workers)`` (the loader drops the last
    partial batch; workers shard the data), capped by ``max_train_steps``. ``step_s`` defaults
    to the cached measurement for (pair, crop, batch, device, dtype) or a scaled reference.
    Evaluation: validation images (capped by ``max_val_images``) at the cached whole-image
    rate, else a third of a training step per image.
    """
    from cotrain.data import get_dataset
    step_s = estimate_step_seconds(cfg, cache) if step_s is None else step_s
    steps = max(len(get_dataset(cfg.dataset, cfg.data_root, "train")) // (cfg.batch_size * cfg.workers), 1)
    if cfg.max_train_steps is not None:
        steps = min(steps, cfg.max_train_steps)
    val = len(get_dataset(cfg.dataset, cfg.data_root, "val"))
    if cfg.max_val_images is not None:
        val = min(val, cfg.max_val_images)
    entry = cached_entry(cfg, cache) or {}
    rate = entry.get("images_per_s", {}).get("eval_whole")
    eval_per_image = 1.0 / rate if rate else step_s / cfg.batch_size / 3
    return cfg.epochs * (steps * step_s + val * eval_per_image) + STARTUP_S
