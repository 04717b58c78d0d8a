"""``python -m cotrain.weights fetch``: fill a weights cache folder the compute nodes share.

On a machine with internet::

    python -m cotrain.weights fetch --cnn mobilenet_v2 resnet50 --vit mit_b1 --cache /shared/cotrain-weights

then run with ``COTRAIN_WEIGHTS_CACHE=/shared/cotrain-weights``: ``--weights imagenet`` reads the cache and
never goes online for a cached encoder (``cotrain.models.weights`` does the reading).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from cotrain.cli import OneLineParser, guarded
from cotrain.errors import ConfigError
from cotrain.models.registry import encoder_names
from cotrain.models.weights import CACHE_ENV, fetch

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m cotrain.weights", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("fetch", help="download ImageNet encoder weights into a cache folder")
    p.add_argument("--cnn", nargs="*", default=[], choices=encoder_names("cnn"), help="CNN encoders")
    p.add_argument("--vit", nargs="*", default=[], choices=encoder_names("vit"), help="ViT encoders")
    p.add_argument("--cache", required=True, help="folder to fill (shared by the compute nodes)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return guarded(lambda: _fetch(args))


def _fetch(args: argparse.Namespace) -> int:
    names = [*args.cnn, *args.vit]
    if not names:
        raise ConfigError("fetch needs at least one encoder: --cnn NAME ... and/or --vit NAME ...")
    for name, path in zip(names, fetch(names, args.cache)):
        print(f"{name}: {path}")
    print(f"cached in {args.cache}; on the nodes set {CACHE_ENV}={Path(args.cache).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
