"""A search's results (``sweeps/search.py``): its non-dominated settings, the Pareto plot, the parameter importances.

Read from the trial files alone (Ray need not run). Every setting of a search carries the search's plan in
its params.json (``search``: objectives, seeds, searched space) and lists its replicates (final mIoU per
seed) in its reports. Gains are recomputed here: a seed's gain is the setting's mIoU on that seed minus the
mIoU of the search's Vanilla run of the same seed (read from that run's own folder); mean ± std over seeds
and the paired 95 % t-interval (``analysis.stats``).

The front is Optuna's (``Study.best_trials``: no other finished setting is at least as good on every
objective and better on one) over the search's objectives, from a study rebuilt from the files. The
importances are Optuna's default evaluator, PED-ANOVA, which handles the conditional weights (β exists
only with HFD on...), one per objective; see ``importance_quantile`` for its one changed setting.
"""

from __future__ import annotations

import json
import math
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.formatting import DATASETS, SIGNIFICANT, backbone_name
from analysis.results import FAILED, FINISHED, UNFINISHED, Results, read_result_lines
from analysis.stats import seed_values, t_interval
from analysis.tables import Rendered
from cotrain.tables import TableSpec

PLAN_KEY = "search"  # cotrain.search.SEARCH_KEY: the params.json key of a replicated search's plan
SEARCHED = ("hfd", "bsd_region", "bsd_pixel", "alpha", "beta", "gamma")
SWITCHES = {"hfd": "HFD", "bsd_region": "BSD-R", "bsd_pixel": "BSD-P"}
WEIGHTS = {"alpha": "α", "beta": "β", "gamma": "γ"}
OBJECTIVE_NAMES = {"gain_cnn": "CNN gain", "gain_vit": "ViT gain", "time_s": "time per run (s)",
                   "miou_sum": "mIoU sum", "miou_cnn": "CNN mIoU", "miou_vit": "ViT mIoU"}


@dataclass(frozen=True)
class Search:
    """One replicated search.

    Attributes:
        name: the search's name (its sweep name; folders ``<name>`` and ``<name>-vanilla``).
        plan: the plan its trials carry (``objectives``, ``seeds``, ``space``, ``paper_default``...).
        settings: one row per proposed setting, in the order proposed: ``index`` (1-based), ``trial_id``,
            ``status``, ``error``, the searched keys (None where a weight was not searched), ``n`` (seeds
            finished), per student ``<s>_mean``, ``<s>_std``, ``<s>_low``, ``<s>_high`` for s in cnn, vit,
            every objective's value, ``paper_default``.
        pair: (cnn, vit); dataset: the dataset key.
    """

    name: str
    plan: dict[str, Any]
    settings: pd.DataFrame
    pair: tuple[str, str]
    dataset: str

    @property
    def objectives(self) -> list[tuple[str, str]]:
        return [(metric, mode) for metric, mode in self.plan["objectives"]]

    @property
    def finished(self) -> pd.DataFrame:
        return self.settings[self.settings["status"] == FINISHED]


def split_searches(results: Results) -> tuple[Results, list[Search]]:
    """The replicated searches under a results root, and the results without their trials."""
    trials = results.trials
    if PLAN_KEY not in trials or trials.empty:
        return results, []
    names = list(dict.fromkeys(trials.loc[trials[PLAN_KEY].notna(), "experiment"]))
    searches = [load_search(name, trials[trials["experiment"] == name]) for name in names]
    rest = trials[~trials["experiment"].isin(names)]
    return Results(rest, results.history, results.iou), searches


def load_search(name: str, trials: pd.DataFrame) -> Search:
    """One search from its trials (settings and the Vanilla runs of its seeds)."""
    settings = trials[trials[PLAN_KEY].notna()]
    settings = settings.iloc[sorted(range(len(settings)), key=lambda i: _proposed(settings.iloc[i]))]
    plan = json.loads(settings[PLAN_KEY].iloc[-1])
    vanilla = trials[(trials[PLAN_KEY].isna()) & (trials["method"] == "vanilla") & (trials["status"] == FINISHED)]
    references = {s: seed_values(vanilla, f"miou_{s}") for s in ("cnn", "vit")}
    rows = [_setting(i + 1, row, plan, references) for i, row in enumerate(settings.to_dict("records"))]
    first = settings.iloc[0]
    return Search(name, plan, pd.DataFrame(rows), (str(first["cnn"]), str(first["vit"])), str(first["dataset"]))


def _proposed(trial: pd.Series) -> tuple[int, str]:
    """When Tune created the trial: the number after its id in the folder name (``run_setting_<id>_<n>_...``)."""
    found = re.search(rf"_{re.escape(str(trial['trial_id']))}_(\d+)", Path(trial["trial_dir"]).name)
    return (int(found.group(1)) if found else sys.maxsize, str(trial["trial_id"]))


def _setting(index: int, trial: dict[str, Any], plan: dict[str, Any],
             references: dict[str, pd.Series]) -> dict[str, Any]:
    """A setting's row: its values, its replicates' statistics, its objectives and how it ended."""
    replicates = _replicates(Path(trial["trial_dir"]))
    params = {k: _value(trial.get(k)) for k in SEARCHED}
    row: dict[str, Any] = {"index": index, "trial_id": trial["trial_id"], **params, "n": len(replicates),
                           "paper_default": _is_default(params, plan.get("paper_default", {}))}
    frame = pd.DataFrame(replicates, columns=["seed", "miou_cnn", "miou_vit", "time_s"]).set_index("seed")
    for student in ("cnn", "vit"):
        gains = (frame[f"miou_{student}"] - references[student]).dropna()
        row[f"{student}_mean"] = gains.mean() if len(gains) else math.nan
        row[f"{student}_std"] = gains.std(ddof=1) if len(gains) > 1 else math.nan
        row[f"{student}_low"], row[f"{student}_high"] = t_interval(gains)
    values = {"gain_cnn": row["cnn_mean"], "gain_vit": row["vit_mean"], "time_s": frame["time_s"].mean(),
              "miou_cnn": frame["miou_cnn"].mean(), "miou_vit": frame["miou_vit"].mean()}
    row.update(values, miou_sum=values["miou_cnn"] + values["miou_vit"])
    complete = len(replicates) == plan["seeds"] and not math.isnan(row["cnn_mean"] + row["vit_mean"])
    failed = (Path(trial["trial_dir"]) / "error.txt").is_file()
    row["status"] = FINISHED if complete and trial["status"] == FINISHED else FAILED if failed else UNFINISHED
    row["error"] = _error(Path(trial["trial_dir"])) if row["status"] == FAILED else None
    if isinstance(trial.get("problem"), str):  # impossible numbers in its reports (analysis.results)
        row["status"], row["error"] = trial["status"], trial["problem"]
    return row


def _replicates(trial_dir: Path) -> list[dict[str, Any]]:
    """The replicates listed by the setting's last report that lists them (none before its first seed ends)."""
    for record in reversed(read_result_lines(trial_dir / "result.json")):
        if isinstance(record.get("replicates"), list):
            return record["replicates"]
    return []


def _value(value: Any) -> Any:
    """A searched key as read: None where the setting did not search it (a weight whose term is off)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return bool(value) if isinstance(value, bool) or type(value).__name__ == "bool_" else float(value)


def _present(value: Any) -> bool:
    """Whether a searched key has a value (the settings frame holds NaN where a weight was not searched)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _is_default(params: dict[str, Any], default: dict[str, Any]) -> bool:
    """Whether the setting is the paper's default (every switch as there, every weight within 1e-9)."""
    if not default:
        return False
    return all(params.get(k) == v if isinstance(v, bool) else
               _present(params.get(k)) and math.isclose(params[k], v, rel_tol=1e-9) for k, v in default.items())


def _error(trial_dir: Path) -> str:
    """The cause a failed setting names: the last line of Ray's error.txt, without the exception's module."""
    lines = [line.strip() for line in (trial_dir / "error.txt").read_text(errors="replace").splitlines()
             if line.strip()]
    last = lines[-1] if lines else "failed"
    head, sep, tail = last.partition(": ")
    return tail if sep and "Error" in head.rsplit(".", 1)[-1] else last


def study(search: Search, objectives: list[tuple[str, str]] | None = None):
    """An Optuna study holding the search's finished settings (``user_attrs['index']``) and their objectives."""
    import optuna
    from optuna.distributions import json_to_distribution
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objectives = objectives or search.objectives
    spaces = {k: json_to_distribution(v) for k, v in search.plan["space"].items()}
    rebuilt = optuna.create_study(directions=["maximize" if m == "max" else "minimize" for _, m in objectives])
    for row in search.finished.to_dict("records"):
        params = {k: row[k] for k in spaces if _present(row.get(k))}
        rebuilt.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: spaces[k] for k in params},
            values=[float(row[metric]) for metric, _ in objectives], user_attrs={"index": int(row["index"])}))
    return rebuilt


def front(search: Search, objectives: list[tuple[str, str]] | None = None) -> list[int]:
    """Setting indices on the Pareto front of ``objectives`` (default: the search's), best CNN gain first."""
    indices = {t.user_attrs["index"] for t in study(search, objectives).best_trials}
    chosen = search.settings[search.settings["index"].isin(indices)]
    return list(chosen.sort_values("cnn_mean", ascending=False)["index"])


def importance_quantile(finished: int) -> float:
    """PED-ANOVA's ``target_quantile``: Optuna's 0.1, raised so that at least two settings form the top group.

    With 0.1 a search of under 20 settings compares the parameter distribution of a single setting with
    the rest; capped at 0.5 (the top half against all).
    """
    return min(0.5, max(0.1, 2 / max(finished, 1)))


def importances(search: Search) -> dict[str, dict[str, float]]:
    """Per objective, each searched key's importance (Optuna's PED-ANOVA, normalised to sum 1)."""
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator
    rebuilt = study(search)
    evaluator = PedAnovaImportanceEvaluator(target_quantile=importance_quantile(len(search.finished)))
    out = {}
    for i, (metric, mode) in enumerate(search.objectives):
        sign = -1.0 if mode == "max" else 1.0  # PED-ANOVA ranks a lower target as better

        def target(trial, i: int = i, sign: float = sign) -> float:
            return sign * trial.values[i]

        with warnings.catch_warnings():  # its note that a lower target is better: handled by the sign
            warnings.simplefilter("ignore")
            out[metric] = optuna.importance.get_param_importances(rebuilt, evaluator=evaluator, target=target)
    return out


def _gain(row: dict[str, Any], student: str) -> str:
    """``+1.23 ± 0.40 [-0.50, +2.96]*``: mean ± std over seeds and the paired 95 % interval."""
    text = f"{row[f'{student}_mean']:+.2f}"
    if not math.isnan(row[f"{student}_std"]):
        text += f" ± {row[f'{student}_std']:.2f}"
    low, high = row[f"{student}_low"], row[f"{student}_high"]
    if not math.isnan(low):
        text += f" [{low:+.2f}, {high:+.2f}]" + (SIGNIFICANT if low > 0 or high < 0 else "")
    return text


def _cells(row: dict[str, Any], search: Search) -> dict[str, str]:
    cnn, vit = (backbone_name(code) for code in search.pair)
    cells = {"#": str(row["index"]), **{label: "✓" if row[k] else "–" for k, label in SWITCHES.items()},
             **{label: f"{row[k]:.3g}" if _present(row[k]) else "–" for k, label in WEIGHTS.items()}}
    done = row["status"] == FINISHED
    cells[f"{cnn} gain"] = _gain(row, "cnn") if done else row["status"]
    cells[f"{vit} gain"] = _gain(row, "vit") if done else f"{row['n']} of {search.plan['seeds']} seeds done"
    if any(metric == "time_s" for metric, _ in search.objectives):
        cells["time / run (s)"] = f"{row['time_s']:.0f}" if done else "–"
    cells["note"] = "paper default" if row["paper_default"] else ""
    return cells


def _title(search: Search, what: str) -> str:
    cnn, vit = (backbone_name(code) for code in search.pair)
    goals = ", ".join(f"{OBJECTIVE_NAMES.get(m, m)} ({m}) {d}" for m, d in search.objectives)
    return (f"{what} of search {search.name}: {cnn}+{vit} on {DATASETS.get(search.dataset, search.dataset)}, "
            f"{search.plan['seeds']} seed(s) per setting; objectives: {goals}")


def _notes(search: Search, on_front: list[int]) -> list[str]:
    counts = search.settings["status"].value_counts()
    lines = [f"Gains in mIoU points over the Vanilla run of the same seed: mean ± std over "
             f"{search.plan['seeds']} seeds, [lo, hi] = paired 95 % t-interval, {SIGNIFICANT} = it excludes 0. "
             "– = a term switched off, or a weight not used by the terms that are on.",
             f"{len(search.settings)} settings: {counts.get(FINISHED, 0)} finished, {counts.get(FAILED, 0)} "
             f"failed, {counts.get(UNFINISHED, 0)} unfinished; {len(on_front)} on the front (no other finished "
             "setting at least as good on every objective and better on one)."]
    for row in search.settings[search.settings["status"] == FAILED].to_dict("records"):
        lines.append(f"Setting {row['index']} failed: {row['error']}")
    return lines


def search_tables(search: Search) -> list[Rendered]:
    """The front (``search_<name>``) and every setting (``search_<name>_settings``, front marked)."""
    spec = TableSpec("search", "Optuna search")
    on_front = front(search) if len(search.finished) else []
    rows = search.settings.set_index("index")
    front_frame = pd.DataFrame([_cells(rows.loc[i].to_dict() | {"index": i}, search) for i in on_front])
    every = pd.DataFrame([{**_cells(row, search), "front": "✓" if row["index"] in on_front else ""}
                          for row in search.settings.to_dict("records")])
    stem = f"search_{search.name}"
    return [Rendered(stem, spec, _title(search, "Pareto front"), front_frame, _notes(search, on_front)),
            Rendered(f"{stem}_settings", spec, _title(search, "Every setting"), every, _notes(search, on_front))]


def plot_pareto(search: Search, stem: Path) -> list[Path]:
    """CNN gain against ViT gain: every finished setting (± std over seeds), the front of both gains joined,
    Vanilla at the origin, the paper's default marked where it was evaluated."""
    import matplotlib.pyplot as plt

    from analysis.plots import save
    done = search.finished
    fig, ax = plt.subplots(figsize=(6, 5), layout="constrained")
    ax.axhline(0, color="grey", lw=0.6)
    ax.axvline(0, color="grey", lw=0.6)
    ax.errorbar(done["cnn_mean"], done["vit_mean"], xerr=done["cnn_std"].fillna(0), yerr=done["vit_std"].fillna(0),
                fmt="o", color="grey", ecolor="lightgrey", capsize=2, label="setting (± std over seeds)")
    line = done.set_index("index").loc[front(search, [("gain_cnn", "max"), ("gain_vit", "max")])]
    ax.plot(line["cnn_mean"], line["vit_mean"], "-o", color="C0", label="Pareto front (CNN gain, ViT gain)")
    for index, row in done.set_index("index").iterrows():
        ax.annotate(str(index), (row["cnn_mean"], row["vit_mean"]), textcoords="offset points", xytext=(4, 4),
                    fontsize=7)
    ax.plot([0], [0], "X", color="black", markersize=9, label="Vanilla (origin)")
    default = done[done["paper_default"]]
    if not default.empty:
        ax.plot(default["cnn_mean"], default["vit_mean"], "*", color="C3", markersize=16,
                label="paper default (α=1, β=0.1, γ=1)")
    cnn, vit = (backbone_name(code) for code in search.pair)
    ax.set(xlabel=f"{cnn} gain over Vanilla (mIoU points)", ylabel=f"{vit} gain over Vanilla (mIoU points)")
    ax.legend(fontsize=7, loc="best")
    fig.suptitle(_title(search, "Pareto plot"), fontsize=8, wrap=True)
    return save(fig, stem)


def plot_importance(search: Search, stem: Path) -> list[Path]:
    """One panel per objective: each searched key's importance (PED-ANOVA)."""
    import matplotlib.pyplot as plt

    from analysis.plots import save
    found = importances(search)
    fig, axes = plt.subplots(1, len(found), figsize=(4.5 * len(found), 3.5), squeeze=False, layout="constrained")
    labels = {**SWITCHES, **WEIGHTS}
    for ax, (metric, values) in zip(axes[0], found.items()):
        names = list(values)[::-1]  # the most important on top
        ax.barh([labels.get(n, n) for n in names], [values[n] for n in names], color="C0")
        ax.set(xlabel="importance (sums to 1)", title=OBJECTIVE_NAMES.get(metric, metric), xlim=(0, 1))
    fig.suptitle(f"Parameter importance (Optuna PED-ANOVA, top {importance_quantile(len(search.finished)):.0%} "
                 f"of {len(search.finished)} settings): search {search.name}", fontsize=8)
    return save(fig, stem)


def search_plots(search: Search, out: Path) -> list[Path]:
    """The Pareto plot and, with two finished settings or more, the importance plot."""
    if search.finished.empty:
        print(f"make_tables.py: search {search.name}: no finished setting, no plot", flush=True)
        return []
    paths = plot_pareto(search, out / f"search_{search.name}_pareto")
    if len(search.finished) < 2:
        print(f"make_tables.py: search {search.name}: one finished setting, no importance plot", flush=True)
        return paths
    try:
        return paths + plot_importance(search, out / f"search_{search.name}_importance")
    except ValueError as error:  # Optuna refuses a study it cannot rank (e.g. every value equal)
        print(f"make_tables.py: search {search.name}: no importance plot ({error})", flush=True)
        return paths


def describe(search: Search) -> str:
    """``search_<name> <- <name> (6 settings x 2 seeds: 5 finished, 1 failed, 0 unfinished)``."""
    counts = search.settings["status"].value_counts()
    parts = ", ".join(f"{counts.get(s, 0)} {s}" for s in (FINISHED, FAILED, UNFINISHED))
    return f"search_{search.name} <- {search.name} ({len(search.settings)} settings x {search.plan['seeds']} seeds: " \
           f"{parts})"


def render_searches(searches: list[Search]) -> list[Rendered]:
    """Every search's tables, each search named with where it was read from."""
    tables = []
    for search in searches:
        print(describe(search))
        tables += search_tables(search)
    return tables
