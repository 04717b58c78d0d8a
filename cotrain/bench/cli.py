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
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from cotrain.bench.driver import run_benchmark
from cotrain.bench.report import format_table, update_cache, write_csv
from cotrain.bench.settings import SMOKE, Settings, resolved_dtype
from cotrain.estimate import resolved_device, step_cache_path


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
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    device = resolved_device(settings.device)
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda, but CUDA is not available")
    dtype = resolved_dtype(settings.dtype, device)
    if device == "cpu" and dtype == "bf16":
        print("note: autocast is CUDA-only in the training loop; the CPU steps run in fp32")
        dtype = "fp32"
    print(f"benchmark {settings.pair}, {settings.size}x{settings.size}, batch {settings.batch}, {device} {dtype}, "
          f"{settings.steps} steps x {settings.repeats} repeats after {settings.warmup} warm-up")
    rows = run_benchmark(settings)
    print(format_table(rows))
    write_csv(rows, args.out, settings, device, dtype)
    print(f"wrote {args.out}")
    if not args.no_cache:
        print(f"step times cached in {update_cache(rows, settings, device, dtype, args.cache)}")
    return 0
