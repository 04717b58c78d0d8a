"""``python -m cotrain.bench``: what HFD and BSD cost over training the students side by side.

Measures, in one command, the median training-step time and peak memory of each student
alone (its own optimiser, CE only), of the Vanilla pair (no exchange) and of ``ours`` with
HFD only, BSD only and both; then the training loader's and evaluation's images/s.

Every step case runs the real step (``cotrain.engine.loop.training_step`` on a pair built and
prepared as ``build_run`` does) on synthetic in-memory tensors, in a fresh spawned process:
peak memory is that process's RSS high-water mark (reset after the model is built; on CUDA,
``torch.cuda.max_memory_allocated``) minus its footprint after the build. Cases are repeated
in rotated order so that ratios hold on a shared, noisy machine.

Examples:
    python -m cotrain.bench --pair mobilenet_v2+mit_b1 --size 128 --batch 4 --out bench.csv
    python -m cotrain.bench --smoke --out /tmp/bench.csv
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cotrain.estimate import CASES, cache_key, read_cache, resolved_device, step_cache_path

PAIR_CASES = {
    "vanilla_pair": {"method": "vanilla"},
    "hfd": {"method": "ours", "hfd": True, "bsd_region": False, "bsd_pixel": False},
    "bsd": {"method": "ours", "hfd": False, "bsd_region": True, "bsd_pixel": True},
    "hfd_bsd": {"method": "ours", "hfd": True, "bsd_region": True, "bsd_pixel": True},
}
COLUMNS = ("case", "step_s_median", "step_s_min", "step_s_iqr", "steps_timed", "peak_mem_mb", "peak_rss_mb",
           "step_ratio_vs_vanilla", "mem_ratio_vs_vanilla", "images_per_s", "note")


@dataclass(frozen=True)
class Settings:
    """One benchmark: the pair, input size, batch, and how long to measure."""

    pair: str = "mobilenet_v2+mit_b1"
    size: int = 128
    batch: int = 4
    steps: int = 20
    warmup: int = 3
    repeats: int = 2
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    channels_last: bool = True
    num_classes: int = 21
    eval_images: int = 10
    loader_batches: int = 20

    @property
    def encoders(self) -> tuple[str, str]:
        cnn, _, vit = self.pair.partition("+")
        if not cnn or not vit:
            raise ValueError(f"--pair {self.pair!r} must read CNN+ViT, e.g. mobilenet_v2+mit_b1")
        return cnn, vit


SMOKE = {"pair": "mobilenet_v2+mit_b0", "size": 64, "batch": 2, "steps": 3, "warmup": 1, "repeats": 1,
         "eval_images": 2, "loader_batches": 2}


# ----------------------------------------------------------------------------- configs


def resolved_dtype(dtype: str, device: str) -> str:
    """bf16 by default on CUDA (the training default, ``amp``), fp32 on CPU (autocast is CUDA-only there)."""
    if dtype == "auto":
        return "bf16" if device == "cuda" else "fp32"
    return dtype


def case_config(settings: Settings, case: str):
    """The TrainConfig a case trains with (cpu preset defaults, the case's method and switches)."""
    from cotrain.config import resolve
    cnn, vit = settings.encoders
    device = resolved_device(settings.device)
    options = PAIR_CASES.get(case, {"method": "vanilla"})
    return resolve("cpu", overrides=dict(cnn=cnn, vit=vit, crop_size=settings.size, batch_size=settings.batch,
                                         device=device, amp=resolved_dtype(settings.dtype, device) == "bf16",
                                         compile=settings.compile, channels_last=settings.channels_last,
                                         **options))


# ----------------------------------------------------------------------------- step cases (child processes)


class SoloStudent:
    """Adapter so one student trains through ``training_step``: CE only, returns ``{side: L}``."""

    @staticmethod
    def build(side: str, cfg, num_classes: int):
        import torch
        from torch import nn

        from cotrain.engine.loop import compile_student
        from cotrain.engine.optim import poly_schedule
        from cotrain.losses import ce_loss
        from cotrain.models.students import build_student

        class Solo(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.student = build_student(side, getattr(cfg, side), num_classes, None)

            def forward(self, images, target):
                return {side: ce_loss(self.student(images).logits, target)}

        model = Solo()
        if cfg.compile:
            compile_student(model.student)
        if side == "cnn":
            optimizer = torch.optim.SGD(model.parameters(), lr=cfg.cnn_lr, momentum=cfg.cnn_momentum,
                                        weight_decay=cfg.cnn_weight_decay)
        else:
            optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.vit_lr, weight_decay=cfg.vit_weight_decay)
        power = cfg.cnn_poly_power if side == "cnn" else cfg.vit_poly_power
        return model, {side: optimizer}, {side: poly_schedule(optimizer, 10**9, power)}


def _build_case(settings: Settings, case: str):
    """A ``Run`` holding just what ``training_step`` needs for ``case``."""
    import torch

    from cotrain.engine.loop import Run, prepare_pair
    from cotrain.engine.optim import build_optimizers
    from cotrain.pair import build_pair

    cfg = case_config(settings, case)
    device = torch.device(cfg.device)
    if case in PAIR_CASES:
        pair = build_pair(cfg.cnn, cfg.vit, settings.num_classes, None, cfg.method, **cfg.pair_options())
        pair = prepare_pair(pair, cfg, device)
        optimizers, schedulers = build_optimizers(pair, cfg, 10**9)
        model = pair
    else:
        side = case.split("_")[0]
        model, optimizers, schedulers = SoloStudent.build(side, cfg, settings.num_classes)
        model = model.to(device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            if side == "cnn" and cfg.channels_last:
                model.to(memory_format=torch.channels_last)
        pair = model
    return Run(cfg, pair, model, optimizers, schedulers, None, None, None, [], device)


def synthetic_batch(settings: Settings, device_type: str, seed: int = 0):
    """(N, 3, S, S) normal images and (N, S, S) labels with ~5 % ignored pixels, on the host."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(settings.batch, 3, settings.size, settings.size, generator=gen)
    target = torch.randint(0, settings.num_classes, (settings.batch, settings.size, settings.size), generator=gen)
    target[torch.rand(target.shape, generator=gen) < 0.05] = 255
    if device_type == "cuda":
        images, target = images.pin_memory(), target.pin_memory()
    return images, target


class PeakMemory:
    """Peak memory above the footprint at ``start()``: CUDA allocator or process RSS high-water mark."""

    def __init__(self, device_type: str) -> None:
        self.cuda = device_type == "cuda"

    def start(self) -> None:
        import torch
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return
        self.base = _rss_kb() * 1024
        try:  # "5" resets the high-water mark (VmHWM, and ru_maxrss with it) to the current RSS
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.base = _maxrss_bytes()  # cannot reset: measure above the high-water mark so far

    def peak(self) -> tuple[float, float]:
        """(peak above the start, absolute peak), in MiB."""
        import torch
        if self.cuda:
            torch.cuda.synchronize()
            top = torch.cuda.max_memory_allocated()
        else:
            top = _maxrss_bytes()
        return max(top - self.base, 0) / 2**20, top / 2**20


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def _rss_kb() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return _maxrss_bytes() // 1024


def measure_case(settings: Settings, case: str) -> dict:
    """Run in a fresh process: build ``case``, warm up, time ``settings.steps`` steps; return times and memory."""
    import torch

    from cotrain.engine.loop import training_step

    torch.manual_seed(0)
    run = _build_case(settings, case)
    images, target = synthetic_batch(settings, run.device.type)
    run.model.train()
    memory = PeakMemory(run.device.type)
    memory.start()
    times = []
    for index in range(settings.warmup + settings.steps):
        start = time.perf_counter()
        losses = training_step(run, images, target)
        if run.device.type == "cuda":
            torch.cuda.synchronize()
        if index >= settings.warmup:
            times.append(time.perf_counter() - start)
    total = sum(float(v.detach()) for k, v in losses.items() if k in run.optimizers)
    if not math.isfinite(total):
        raise RuntimeError(f"case {case}: non-finite loss {total}")
    peak, absolute = memory.peak()
    return {"times": times, "peak_mem_mb": peak, "peak_rss_mb": absolute}


def measure_eval(settings: Settings) -> dict[str, float]:
    """Images/s of evaluation (both students, as ``evaluate`` runs them): whole image and sliding window.

    ``eval_whole``: S×S images; ``eval_sliding``: 2S×2S images in S×S windows every 2S/3 (9 windows).
    """
    import torch

    from cotrain.engine.inference import EvalProtocol
    from cotrain.engine.loop import autocast

    run = _build_case(settings, "vanilla_pair")
    run.pair.eval()
    s = settings.size
    protocols = {"eval_whole": (EvalProtocol("whole"), s),
                 "eval_sliding": (EvalProtocol("sliding", window=s, stride=max(2 * s // 3, 1)), 2 * s)}
    out = {}
    with torch.no_grad():
        for name, (protocol, side) in protocols.items():
            image = torch.randn(1, 3, side, side)
            rate = []
            for index in range(1 + settings.eval_images):
                start = time.perf_counter()
                with autocast(run):
                    logits = protocol.predict(lambda x: torch.cat(run.pair.predict(x), dim=1),
                                              image.to(run.device))
                logits.argmax(1).cpu()
                if index:  # the first image warms up
                    rate.append(time.perf_counter() - start)
            out[name] = len(rate) / sum(rate)
    return out


def _in_fresh_process(fn, *args):
    """``fn(*args)`` in a newly spawned process (fresh allocator, fresh RSS high-water mark)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


# ----------------------------------------------------------------------------- the benchmark


def run_benchmark(settings: Settings, log=print) -> list[dict]:
    """Every step case (interleaved over ``repeats``), then loader and evaluation throughput; one row each."""
    results: dict[str, list[dict]] = {case: [] for case in CASES}
    for repeat in range(settings.repeats):
        order = CASES[repeat % len(CASES):] + CASES[:repeat % len(CASES)]
        order = order[::-1] if repeat % 2 else order
        for case in order:
            result = _in_fresh_process(measure_case, settings, case)
            results[case].append(result)
            log(f"  [{repeat + 1}/{settings.repeats}] {case:<13} median {statistics.median(result['times']):.4f} s  "
                f"peak +{result['peak_mem_mb']:.0f} MiB")
    rows = [_step_row(case, results[case], settings) for case in CASES]
    vanilla = rows[CASES.index("vanilla_pair")]
    for row in rows:
        row["step_ratio_vs_vanilla"] = row["step_s_median"] / vanilla["step_s_median"]
        row["mem_ratio_vs_vanilla"] = row["peak_mem_mb"] / vanilla["peak_mem_mb"] if vanilla["peak_mem_mb"] else None
    rows.append(_loader_row(settings, rows[CASES.index("hfd_bsd")]["step_s_median"]))
    for name, rate in _in_fresh_process(measure_eval, settings).items():
        rows.append({"case": name, "images_per_s": rate, "note": _eval_note(name, settings)})
    return rows


def _step_row(case: str, results: list[dict], settings: Settings) -> dict:
    times = [t for r in results for t in r["times"]]
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    median = statistics.median(times)
    return {"case": case, "step_s_median": median, "step_s_min": min(times), "step_s_iqr": q[2] - q[0],
            "steps_timed": len(times), "peak_mem_mb": statistics.median(r["peak_mem_mb"] for r in results),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in results),
            "images_per_s": settings.batch / median, "note": ""}


def _loader_row(settings: Settings, step_s: float) -> dict:
    """The training loader with the cpu preset's workers; the note compares one batch's time to a step."""
    from cotrain.data import get_dataset, train_transform
    from cotrain.data.bench import loader_throughput
    cfg = case_config(settings, "hfd_bsd")
    dataset = get_dataset(cfg.dataset, cfg.data_root, "train")
    rate = loader_throughput(dataset, train_transform(settings.size), settings.batch, cfg.num_workers,
                             settings.loader_batches)
    batch_s = settings.batch / rate
    return {"case": "loader", "images_per_s": rate,
            "note": f"{cfg.dataset}, {cfg.num_workers} worker(s): {batch_s:.4f} s/batch = "
                    f"{batch_s / step_s:.2f}x the hfd_bsd step"}


def _eval_note(name: str, settings: Settings) -> str:
    s = settings.size
    return f"{s}x{s} images, batch 1" if name == "eval_whole" else \
        f"{2 * s}x{2 * s} images, window {s} stride {max(2 * s // 3, 1)}"


# ----------------------------------------------------------------------------- output and cache


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


# ----------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cotrain.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", help="CNN+ViT encoders (default mobilenet_v2+mit_b1)")
    parser.add_argument("--size", type=int, help="square input side, a multiple of 32 (default 128)")
    parser.add_argument("--batch", type=int, help="batch size (default 4)")
    parser.add_argument("--steps", type=int, help="timed steps per case and repeat (default 20)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 3)")
    parser.add_argument("--repeats", type=int, help="interleaved rounds over the cases (default 2)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto",
                        help="bf16 = the training loop's CUDA autocast (default on CUDA); CPU runs fp32")
    parser.add_argument("--compile", action="store_true", help="torch.compile both students, as --compile trains")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes for CI: " + json.dumps(SMOKE))
    parser.add_argument("--out", type=Path, default=Path("bench.csv"), help="CSV file to write")
    parser.add_argument("--cache", type=Path, default=None, help=f"step-time cache (default {step_cache_path()})")
    parser.add_argument("--no-cache", action="store_true", help="do not record step times in the cache")
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    given = {k: getattr(args, k) for k in ("pair", "size", "batch", "steps", "warmup", "repeats")
             if getattr(args, k) is not None}
    base = Settings(**SMOKE) if args.smoke else Settings()
    settings = replace(base, device=args.device, dtype=args.dtype, compile=args.compile, **given)
    settings.encoders  # noqa: B018  (validates --pair)
    if settings.size % 32 or min(settings.size, settings.batch, settings.steps) < 1 or settings.warmup < 0:
        raise SystemExit("--size must be a positive multiple of 32; --batch and --steps >= 1; --warmup >= 0")
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    from cotrain import (
        bench,  # run through the importable module so spawned processes find its functions
    )
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    device = bench.resolved_device(settings.device)
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda, but CUDA is not available")
    dtype = bench.resolved_dtype(settings.dtype, device)
    if device == "cpu" and dtype == "bf16":
        print("note: autocast is CUDA-only in the training loop; the CPU steps run in fp32")
        dtype = "fp32"
    print(f"benchmark {settings.pair}, {settings.size}x{settings.size}, batch {settings.batch}, {device} {dtype}, "
          f"{settings.steps} steps x {settings.repeats} repeats after {settings.warmup} warm-up")
    rows = bench.run_benchmark(settings)
    print(bench.format_table(rows))
    bench.write_csv(rows, args.out, settings, device, dtype)
    print(f"wrote {args.out}")
    if not args.no_cache:
        print(f"step times cached in {bench.update_cache(rows, settings, device, dtype, args.cache)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
