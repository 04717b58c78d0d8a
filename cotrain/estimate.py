"""How long a trial will take: the step times ``python -m cotrain.bench`` cached, else a scaled reference.

Read by the sweeps (``--dry-run`` and the start-of-sweep estimate) and written by the benchmarks
(``python -m cotrain.bench``: step times; ``scripts/gpu_check.sh``: step times and packing throughput on
the GPU; ``python -m cotrain.bench_overhead``: a trial's start-up), which import the cache helpers from
here: a sweep never imports a benchmark. ``plan_gpus`` turns the estimates into GPU-hours and the wall
time of a sweep on N GPUs with trials packed ``--gpus-per-trial``.
"""
from __future__ import annotations

import heapq
import json
import math
import os
import tempfile
from dataclasses import dataclass
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


def update_entries(entries: dict[str, dict], path: Path | None = None) -> Path:
    """Merge ``entries`` (key -> fields) into the cache, atomically; a field holding a dict (``step_s``:
    case -> seconds) is merged too, so that one benchmark's cases do not drop another's."""
    path = path or step_cache_path()
    cache = read_cache(path)
    for key, fields in entries.items():
        entry = dict(cache.get(key, {}))
        for name, value in fields.items():
            old = entry.get(name)
            entry[name] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
        cache[key] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        json.dump(cache, handle, indent=1, sort_keys=True)
    os.replace(handle.name, path)
    return path


def startup_key(device: str) -> str:
    return f"trial_startup|{device}"


def write_startup(device: str, seconds: float, info: dict, path: Path | None = None) -> Path:
    """Record a measured per-trial start-up (``python -m cotrain.bench_overhead``) for ``device``."""
    import time
    return update_entries({startup_key(device): {"seconds": seconds, **info,
                                                 "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}}, path)


def startup_seconds(device: str, path: Path | None = None) -> float:
    """A trial's fixed start-up through Tune + TorchTrainer: measured and cached, else ``STARTUP_S``."""
    entry = read_cache(path).get(startup_key(device), {})
    return float(entry["seconds"]) if "seconds" in entry else STARTUP_S


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


# A case the GPU check does not time stands in for by the nearest one it does (it times Vanilla and HFD + BSD).
STAND_INS = {"hfd": ("hfd_bsd",), "bsd": ("hfd_bsd",), "hfd_bsd": (), "vanilla_pair": ()}


def measured_case(cfg, path: Path | None = None) -> str | None:
    """The cached case whose step time stands for ``cfg`` (its own, else a stand-in); None: nothing measured."""
    times = (cached_entry(cfg, path) or {}).get("step_s", {})
    for case in (case_of(cfg), *STAND_INS.get(case_of(cfg), ())):
        if case in times:
            return case
    return None


def estimate_step_seconds(cfg, path: Path | None = None) -> float:
    """Measured (cached) step time for ``cfg``, else a reference time scaled by pixels per step."""
    case = measured_case(cfg, path)
    if case is not None:
        return float(cached_entry(cfg, path)["step_s"][case])
    device, _ = _cfg_device_dtype(cfg)
    seconds, side = REFERENCE_STEP_S[device]
    return seconds * (cfg.crop_size / side) ** 2 * cfg.batch_size / 4


def step_source(cfg, path: Path | None = None) -> str:
    """Where ``estimate_step_seconds(cfg)`` comes from, in words."""
    if measured_case(cfg, path) is None:
        seconds, side = REFERENCE_STEP_S[_cfg_device_dtype(cfg)[0]]
        return (f"the built-in reference, {seconds:g} s at {side}x{side} batch 4, scaled: nothing measured in "
                f"{path or step_cache_path()}; run python -m cotrain.bench (or scripts/gpu_check.sh) there first")
    entry = cached_entry(cfg, path)
    where = f" on {entry['device_name']}" if entry.get("device_name") else ""
    return f"measured{where}, {entry.get('measured', 'date unknown')}"


def _key_of(cfg) -> str:
    return cache_key(f"{cfg.cnn}+{cfg.vit}", cfg.crop_size, cfg.batch_size, *_cfg_device_dtype(cfg))


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
    return cfg.epochs * (steps * step_s + val * eval_per_image) + startup_seconds(_cfg_device_dtype(cfg)[0], cache)


def packing_slowdown(cfg, trials_per_gpu: int, path: Path | None = None) -> tuple[float, bool]:
    """(how many times slower each of ``trials_per_gpu`` trials sharing one GPU steps than one alone, measured?).

    From the GPU check's packing throughput (``packing_images_per_s`` in the cache: k * rate(1) / rate(k));
    unmeasured, each trial is taken as k times slower (no gain from packing).
    """
    if trials_per_gpu <= 1:
        return 1.0, True
    rates = (cached_entry(cfg, path) or {}).get("packing_images_per_s", {})
    if "1" in rates and str(trials_per_gpu) in rates:
        return trials_per_gpu * rates["1"] / rates[str(trials_per_gpu)], True
    return float(trials_per_gpu), False


def makespan(durations: list[float], slots: int) -> float:
    """Seconds until ``durations`` (started in order, each as soon as one of ``slots`` frees) all end."""
    free = [0.0] * max(slots, 1)
    for duration in durations:
        heapq.heappush(free, heapq.heappop(free) + duration)
    return max(free)


@dataclass(frozen=True)
class GpuPlan:
    """A sweep's GPU budget: device-hours and wall time on ``gpus`` GPUs, trials packed ``gpus_per_trial``."""

    trials: int
    gpus: int
    gpus_per_trial: float
    workers: int
    slots: int
    gpu_hours: float
    wall_s: float
    steps: tuple[str, ...]  # per pair: its step times and where they come from

    def lines(self) -> list[str]:
        share = f"{self.gpus_per_trial:g} GPU per trial" + (f" x {self.workers} workers" if self.workers > 1 else "")
        return [*(f"step times {line}" for line in self.steps),
                f"estimated {self.gpu_hours:.2f} GPU-hours ({share})",
                f"wall time on {self.gpus} GPU{'s' if self.gpus > 1 else ''}: {self.slots} trials at once, "
                f"about {self.wall_s / 3600:.1f} h (each stage's trials start in order as GPUs free up)"]


def trials_per_gpu(gpus_per_trial: float) -> int:
    return round(1 / gpus_per_trial) if gpus_per_trial < 1 else 1


def describe_steps(cfgs: list, per_gpu: int, path: Path | None = None) -> str:
    """One pair's step times by case, their source, and (packed) how much slower each trial steps."""
    cases = {case_of(cfg): cfg for cfg in cfgs}
    times = ", ".join(f"{_as(case, measured_case(cfg, path))} {estimate_step_seconds(cfg, path):.4f} s"
                      for case, cfg in cases.items())
    text = f"{_key_of(cfgs[0])}: {times} ({step_source(cfgs[0], path)})"
    if per_gpu > 1:
        slowdown, measured = packing_slowdown(cfgs[0], per_gpu, path)
        how = "measured by the GPU check" if measured else \
            "packing not measured: no gain assumed; scripts/gpu_check.sh measures it"
        text += f"; {per_gpu} trials per GPU, each {slowdown:.2f}x slower than alone ({how})"
    return text


def _as(case: str, measured: str | None) -> str:
    return case if measured in (None, case) else f"{case} (as {measured})"


def plan_gpus(stages: list[list], gpus: int, gpus_per_trial: float, path: Path | None = None) -> GpuPlan:
    """Plan ``stages`` (lists of trial configs; a stage starts when the previous one has ended) on ``gpus``.

    Each trial's steps are slowed by packing (``packing_slowdown``, per pair); a trial holds
    ``gpus_per_trial * workers`` GPUs. Raises ``ValueError`` when one trial does not fit the GPUs.
    """
    trials = [cfg for stage in stages for cfg in stage]
    workers = trials[0].workers
    slots = math.floor(gpus / (gpus_per_trial * workers) + 1e-9)
    if slots < 1:
        raise ValueError(f"one trial needs {gpus_per_trial:g} GPU x {workers} workers, more than --gpus {gpus}")
    per_gpu = trials_per_gpu(gpus_per_trial)

    def seconds(cfg) -> float:
        step = estimate_step_seconds(cfg, path) * packing_slowdown(cfg, per_gpu, path)[0]
        return estimate_trial_seconds(cfg, step, path)

    durations = [[seconds(cfg) for cfg in stage] for stage in stages]
    by_pair: dict[str, list] = {}
    for cfg in trials:
        by_pair.setdefault(_key_of(cfg), []).append(cfg)
    return GpuPlan(trials=len(trials), gpus=gpus, gpus_per_trial=gpus_per_trial, workers=workers, slots=slots,
                   gpu_hours=sum(sum(d) for d in durations) * gpus_per_trial * workers / 3600,
                   wall_s=sum(makespan(d, slots) for d in durations if d),
                   steps=tuple(describe_steps(cfgs, per_gpu, path) for cfgs in by_pair.values()))
