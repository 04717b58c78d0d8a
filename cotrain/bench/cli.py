"""``python -m cotrain.bench``: what HFD and BSD cost over training the students side by side.

Measures, in one command, the median training-step time and peak memory of each student
alone (its own optimiser, CE only), of the Vanilla pair (no exchange) and of ``ours`` with
HFD only, BSD only and both; then the training loader's and evaluation's images/s.

Every step case runs the real step (``cotrain.engine.loop.training_step`` on a pair built and
prepared as ``build_run`` does) on synthetic in-memory tensors. Peak memory: each case in a fresh
process (forked from a server that has imported torch once), its RSS high-water mark (reset after
the model is built; on CUDA, ``torch.cuda.max_memory_allocated``) minus its footprint after the build.
Step times: every case built in one process and timed in interleaved rounds (a few steps of each case per round, in
rotated order), so that a slow spell of a shared, noisy machine hits every case of a round alike;
each ratio to Vanilla is printed with its 95 % interval over the rounds.

Examples:
    python -m cotrain.bench --pair mobilenet_v2+mit_b1 --size 128 --batch 4 --out bench.csv
    python -m cotrain.bench --smoke --out /tmp/bench.csv
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

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
    parser.add_argument("--steps", type=int, help="timed steps per case and round (default 3)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default 3)")
    parser.add_argument("--repeats", type=int, help="interleaved rounds over the cases (default 10; >= 2 for the "
                                                    "ratios' 95 %% intervals)")
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
    if settings.size % 32 or min(settings.size, settings.batch, settings.steps, settings.repeats) < 1 \
            or settings.warmup < 0:
        _fail("--size must be a positive multiple of 32; --batch, --steps and --repeats >= 1; --warmup >= 0")
    return settings


def torch_device_name() -> str:
    import torch
    return torch.cuda.get_device_name(0)


def _fail(message: str) -> NoReturn:
    """One line on stderr, exit 2 (bad input; nothing ran). ``cotrain.cli.fail``, which this layer cannot import."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    device = resolved_device(settings.device)
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            _fail("--device cuda, but CUDA is not available")
    dtype = resolved_dtype(settings.dtype, device)
    if device == "cpu" and dtype == "bf16":
        print("note: autocast is CUDA-only in the training loop; the CPU steps run in fp32")
        dtype = "fp32"
    print(f"benchmark {settings.pair}, {settings.size}x{settings.size}, batch {settings.batch}, {device} {dtype}, "
          f"{settings.repeats} interleaved rounds x {settings.steps} steps per case after {settings.warmup} warm-up")
    rows = run_benchmark(settings)
    print(format_table(rows))
    write_csv(rows, args.out, settings, device, dtype)
    print(f"wrote {args.out}")
    if not args.no_cache:
        name = torch_device_name() if device == "cuda" else ""
        print(f"step times cached in {update_cache(rows, settings, device, dtype, args.cache, name)}")
    return 0
