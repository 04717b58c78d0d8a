"""``python -m cotrain.data {check,prepare-sbd,generate-builtin,bench}``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from cotrain.data import DATASETS, generate_builtin, get_dataset, get_spec, scan_dataset, train_transform
from cotrain.data.bench import loader_throughput, throughput_table
from cotrain.data.checks import summarise
from cotrain.data.sbd import prepare_sbd
from cotrain.errors import DataError

EXIT_PROBLEMS = 2


REQUIRED_SPLITS = ("train", "val")  # what every run reads; other splits (test) may be absent


def check(args: argparse.Namespace) -> int:
    """Open every file of every split (or of ``--split``); print one line per faulty file (kind, path, reason),
    then a count per kind. A split other than train/val that is absent is skipped with a note."""
    splits = get_spec(args.dataset).splits
    if args.split is not None and args.split not in splits:
        print(f"error: --split {args.split!r} is invalid for {args.dataset}; allowed: {', '.join(splits)}",
              file=sys.stderr)
        return EXIT_PROBLEMS
    errors: list[str] = []
    problems, checked = [], []  # checked: (pairs, split)
    for split in [args.split] if args.split else splits:
        try:
            dataset = get_dataset(args.dataset, args.root, split, check=False)
        except DataError as error:
            _absent(split, str(error), args.split is None, errors)
            continue
        if not dataset.files and split not in REQUIRED_SPLITS and args.split is None:
            print(f"note: {args.dataset} has no {split} split here; skipped")
            continue
        problems += scan_dataset(dataset)
        checked.append((len(dataset), split))
    for line in dict.fromkeys(errors):
        print(f"error: {line}", file=sys.stderr)
    for line in [*map(str, problems), *summarise(problems)]:
        print(line)
    if problems or errors:
        return EXIT_PROBLEMS
    (first, first_split), rest = checked[0], checked[1:]
    others = "".join(f", {n} {split} pairs" for n, split in rest)
    print(f"OK: {first} {args.dataset} {first_split} pairs{others} checked, no problems")
    return 0


def _absent(split: str, error: str, every_split: bool, errors: list[str]) -> None:
    """A split that cannot be listed: an error for train/val (or a split asked for), else a note."""
    if split in REQUIRED_SPLITS or not every_split:
        errors.append(error)
    else:
        print(f"note: {split} split skipped: {error}")


def prepare(args: argparse.Namespace) -> int:
    """Convert SBD into ``SegmentationClassAug`` and write ``trainaug.txt``."""
    try:
        ids = prepare_sbd(args.sbd, args.voc)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_PROBLEMS
    print(f"trainaug.txt: {len(ids)} images")
    return 0


def generate(args: argparse.Namespace) -> int:
    """Write the builtin dataset."""
    root = generate_builtin(args.root, num_train=args.num_train, num_val=args.num_val, size=args.size, seed=args.seed)
    print(f"builtin dataset written to {root}")
    return 0


def bench(args: argparse.Namespace) -> int:
    """Print loader throughput for each worker count."""
    dataset = get_dataset(args.dataset, args.root, args.split)
    crop = args.crop or get_spec(args.dataset).crop_size
    transform = train_transform(crop)
    rows = [(w, loader_throughput(dataset, transform, args.batch_size, w, args.batches)) for w in args.workers]
    print(throughput_table(rows, crop, args.batch_size))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="python -m cotrain.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    names = sorted(DATASETS)

    p = commands.add_parser("check", help="scan every split for missing, unreadable or malformed files")
    p.add_argument("--dataset", required=True, choices=names)
    p.add_argument("--root", help="dataset root (optional for builtin)")
    p.add_argument("--split", default=None, help="check only this split (default: every split)")
    p.set_defaults(run=check)

    p = commands.add_parser("prepare-sbd", help="convert SBD .mat files into SegmentationClassAug + trainaug.txt")
    p.add_argument("--sbd", required=True, help="benchmark_RELEASE directory")
    p.add_argument("--voc", required=True, help="VOCdevkit or VOC2012 directory")
    p.set_defaults(run=prepare)

    p = commands.add_parser("generate-builtin", help="write the generated builtin dataset")
    p.add_argument("--root", required=True)
    p.add_argument("--num-train", type=int, default=300)
    p.add_argument("--num-val", type=int, default=60)
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=generate)

    p = commands.add_parser("bench", help="training-loader throughput per num_workers")
    p.add_argument("--dataset", default="builtin", choices=names)
    p.add_argument("--root")
    p.add_argument("--split", default="train")
    p.add_argument("--crop", type=int, help="crop side (default: the dataset's)")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=4)
    p.set_defaults(run=bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the exit status (0 ok, 2 data problems)."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
