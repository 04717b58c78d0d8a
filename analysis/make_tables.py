"""Regenerate the paper's tables (and plots) from Ray Tune results folders.

Usage (from the repository root)::

    python analysis/make_tables.py [--results DIR] [--format md|latex|csv] [--out DIR]
                                   [--paper] [--no-plots] [--qualitative N]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.formatting import DATASETS, to_text
from analysis.paper import PaperTable, paper_spec, paper_tables
from analysis.provenance import mixed_provenance
from analysis.results import FAILED, FINISHED, INVALID, UNFINISHED, Results, load_results
from analysis.search import render_searches, search_plots, split_searches
from analysis.tables import Rendered, render_table
from cotrain.tables import TableSpec

SUFFIX = {"md": ".md", "latex": ".tex", "csv": ".csv"}


class UsageError(SystemExit):
    """Bad command-line input: one line on stderr, exit status 2."""

    def __init__(self, message: str) -> None:
        print(f"make_tables.py: error: {message}", file=sys.stderr)
        super().__init__(2)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump) and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


@dataclass(frozen=True)
class TableGroup:
    """The trials of one experiment that render as one declared table."""

    name: str
    table_id: str
    experiment: str
    dataset: str
    spec: TableSpec
    trials: pd.DataFrame


def positive_int(text: str) -> int:
    """argparse type for ``--qualitative``."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer (number of validation images)")
    return int(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse and validate the command line."""
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"), help="folder of experiment folders")
    parser.add_argument("--format", choices=sorted(SUFFIX), default="md", help="output format")
    parser.add_argument("--out", type=Path, help="output folder (default: RESULTS/tables)")
    parser.add_argument("--paper", action="store_true", help="show the paper's numbers beside the measured ones")
    parser.add_argument("--no-plots", action="store_true", help="skip the figures")
    parser.add_argument("--qualitative", type=positive_int, metavar="N", help="Fig. 4-style figure of N val images")
    parser.add_argument("--data-root", type=Path, help="dataset root for --qualitative (default: from the config)")
    args = parser.parse_args(argv)
    if not args.results.is_dir() and not args.paper:
        raise UsageError(f"--results {args.results}: no such directory (give the folder holding the sweeps' "
                         f"experiment folders, or use --paper for the paper's tables alone)")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file; give a folder (created if missing)")
    return args


def table_title(group: TableGroup) -> str:
    """Caption: the table's number (the paper's where it reproduces one) and topic, dataset and experiment."""
    head = f"Table {group.table_id}: " if group.table_id.isdigit() else ""
    where = DATASETS.get(group.dataset, group.dataset)
    return f"{head}{group.spec.caption} on {where}; experiment {group.experiment}"


def _declared(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials whose sweep declared their table; warns about the rest (--asha searches, runs outside a sweep)."""
    declared = trials["layout"].notna()
    for table, group in trials[~declared].groupby("table", dropna=False):
        print(f"make_tables.py: {len(group)} trial(s) with table={table!r} skipped: no declared table in "
              f"params.json (--asha searches, single runs and sweeps older than declared tables have none)",
              file=sys.stderr)
    return trials[declared]


def _spec(frame: pd.DataFrame) -> TableSpec:
    """The group's declared table; the newest declaration wins if a resumed sweep changed it."""
    layouts = frame["layout"].dropna().unique()
    if len(layouts) > 1:
        warnings.warn(f"{len(layouts)} different declarations of one table; the last one is used", stacklevel=2)
    return TableSpec.from_dict(layouts[-1])


def _stem(table_id: str) -> str:
    return f"table{table_id}" if table_id.isdigit() else f"table_{table_id}"


def group_tables(trials: pd.DataFrame) -> list[TableGroup]:
    """Split trials into tables: one per (table, experiment, dataset), named ``table7``, ``table_toy`` etc.

    A name shared by several groups gets the experiment (and, within one experiment,
    the dataset) appended.
    """
    keys = ["table_id", "experiment", "dataset"]
    groups = [(tid, str(exp), str(ds), frame) for (tid, exp, ds), frame in _declared(trials).groupby(keys)]
    groups.sort(key=lambda g: (not g[0].isdigit(), g[0].zfill(4), g[1], g[2]))
    stems = [_stem(tid) for tid, *_ in groups]
    result = []
    for stem, (tid, exp, ds, frame) in zip(stems, groups):
        name = stem
        if stems.count(stem) > 1:
            same_experiment = sum(g[0] == tid and g[1] == exp for g in groups) > 1
            name = f"{stem}_{exp}" + (f"_{ds}" if same_experiment else "")
        result.append(TableGroup(name, tid, exp, ds, _spec(frame), frame))
    return result


def describe(group: TableGroup, results_root: Path) -> str:
    """``table7 <- results/alpha (12 trials: 10 finished, 1 failed, 1 unfinished)``."""
    counts = group.trials["status"].value_counts()
    parts = ", ".join(f"{counts.get(s, 0)} {s}" for s in (FINISHED, FAILED, UNFINISHED))
    parts += f", {counts[INVALID]} {INVALID}" if counts.get(INVALID, 0) else ""
    folders = ", ".join(sorted({str(Path(d).parent) for d in group.trials["trial_dir"]}))
    return f"{group.name} <- {folders} ({len(group.trials)} trials: {parts})"


def measured_tables(results: Results, root: Path, papers: dict[str, PaperTable],
                    show_paper: bool) -> list[tuple[TableGroup, Rendered]]:
    """Render every declared table found under ``root``, printing which experiment fed it."""
    rendered = []
    for group in group_tables(results.trials):
        print(describe(group, root))
        report_invalid(group.trials)
        mixed = mixed_provenance(group.name, group.spec, group.trials)
        if mixed:
            print(f"make_tables.py: warning: {mixed}", file=sys.stderr)
        paper = papers.get(group.spec.paper_table(group.dataset)) if show_paper else None
        table = render_table(group.name, group.spec, table_title(group), group.trials, paper)
        rendered.append((group, table))
    return rendered


def report_invalid(trials: pd.DataFrame) -> None:
    """One stderr line per trial whose results are impossible (``analysis.results.invalid_reason``)."""
    for problem in trials.loc[trials["status"] == INVALID, "problem"]:
        print(f"make_tables.py: {problem}; its cell shows '{INVALID}'", file=sys.stderr)


def paper_only_tables(papers: dict[str, PaperTable]) -> list[Rendered]:
    """The nine paper tables alone, gains recomputed and disagreeing subscripts flagged."""
    tables = []
    for number, paper in papers.items():
        spec = paper_spec(paper)
        title = f"Table {number} (paper): {spec.caption} on {DATASETS[paper.dataset]}"
        tables.append(render_table(f"table{number}", spec, title, None, paper))
    return tables


def write_tables(tables: list[Rendered], fmt: str, out: Path | None) -> list[Path]:
    """Print every table and write it to ``out`` (when given) as ``<name><suffix>``."""
    paths = []
    for table in tables:
        text = to_text(table, fmt)
        print(text if fmt != "csv" else f"# {table.title}\n{text}")
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"{table.name}{SUFFIX[fmt]}"
            path.write_text(text, encoding="utf-8")
            paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    papers = paper_tables()
    if not args.results.is_dir():
        write_tables(paper_only_tables(papers), args.format, args.out)
        return 0
    results = load_results(args.results)
    if results.trials.empty:
        if not args.paper:
            raise UsageError(f"--results {args.results}: holds no trial folders (params.json/result.json)")
        write_tables(paper_only_tables(papers), args.format, args.out)
        return 0
    out = args.out or args.results / "tables"
    results, searches = split_searches(results)  # a search renders from its own plan (analysis/search.py)
    rendered = measured_tables(results, args.results, papers, args.paper)
    if not rendered and not searches:
        print(f"make_tables.py: no trial under {args.results} belongs to a declared table; nothing written",
              file=sys.stderr)
        return 1
    written = write_tables([r for _, r in rendered] + render_searches(searches), args.format, out)
    if not args.no_plots:
        from analysis.plots import make_plots

        written += make_plots(rendered, results, papers, out)
        written += [path for search in searches for path in search_plots(search, out)]
    status = 0
    if args.qualitative:
        from analysis.qualitative import make_qualitative

        try:
            written += make_qualitative(results, args.qualitative, out, args.data_root)
        except (ImportError, LookupError, FileNotFoundError, ValueError) as error:  # ValueError: e.g. a plugin's
            # checkpoint config without the plugin (the message names COTRAIN_PLUGINS)
            print(f"make_tables.py: qualitative figure not made: {error}", file=sys.stderr)
            status = 1
    print("wrote:", *map(str, written), sep="\n  ")
    return status


if __name__ == "__main__":
    warnings.formatwarning = lambda message, *_args, **_kw: f"warning: {message}\n"
    sys.exit(main())
