"""The Optuna search (``sweeps/search.py``) over α, β, γ and the HFD / BSD switches, after Vanilla references.

Objectives: one number (``delta``, ``miou_cnn``, ``miou_vit``) or two, the CNN's and the ViT's gain over
the Vanilla run of the same seed (``pareto``; ``pareto+time`` adds the time of one run, minimised), through
Optuna's multi-objective samplers behind Ray Tune's ``OptunaSearch``.

Seeds as replicates (``--seeds N``): each proposed setting is one Tune trial (``run_setting``) that trains
it on seeds 0..N-1, one Ray Train run after another, and reports the mean gain per student (the spread
goes to the results). Why not Tune's ``Repeater`` (one trial per seed, checked in Ray 2.60's
``ray/tune/search/repeater.py``): it reads ``result[searcher.metric]``, which fails (``TypeError:
unhashable type: 'list'``) once the searcher has several metrics, and it averages the replicates that
finished with ``nanmean``, so a failed seed would vanish from the mean instead of failing its setting.
In one trial the replicates run in a known order, a failed one fails the setting with its cause, and
each finished one is kept in a Tune checkpoint, so Tune's retry and ``--resume`` train only the rest.

``--asha`` keeps the one-run-per-trial search (one seed, one objective): ASHA stops a run mid-way, and a
setting here is several runs. Tune's Optuna integration does not report intermediate values (so never
prunes) when it has several metrics: ``OptunaSearch.on_trial_result`` returns early for a list.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from cotrain.cli import check_new_or_resume, check_resume_named
from cotrain.config import TrainConfig
from cotrain.errors import ConfigError, ReplicateError
from cotrain.sweep import (
    SEARCHED,
    SweepSpec,
    asha_scheduler,
    base_config,
    build_parser,
    check_storage,
    default_name,
    guarded,
    pairs_for,
    param_space,
    run_options,
    summarise,
)
from cotrain.tables import TableSpec

# Each objective: the reported metrics the sampler optimises, with their directions.
OBJECTIVES: dict[str, tuple[tuple[str, str], ...]] = {
    "delta": (("miou_sum", "max"),),
    "miou_cnn": (("miou_cnn", "max"),),
    "miou_vit": (("miou_vit", "max"),),
    "pareto": (("gain_cnn", "max"), ("gain_vit", "max")),
    "pareto+time": (("gain_cnn", "max"), ("gain_vit", "max"), ("time_s", "min")),
}
# The paper's setting (§4.1: α = 1, β = 0.1, γ = 1, every term on): always the first one evaluated.
PAPER_DEFAULT: dict[str, Any] = {"hfd": True, "bsd_region": True, "bsd_pixel": True,
                                 "alpha": 1.0, "beta": 0.1, "gamma": 1.0}
SEARCH_KEY = "search"  # the params.json key that carries the search's plan (JSON text; never a config key)
REPLICATES_DIR = "_replicates"  # <experiment>/_replicates/seed<s>/_train/train-<trial id>: a seed's Train run
REPLICATES_FILE = "replicates.json"  # in each Tune checkpoint of a setting: its finished replicates
STRICT_METRICS_ENV = "TUNE_DISABLE_STRICT_METRIC_CHECKING"
SWITCHES = ("hfd", "bsd_region", "bsd_pixel")


def space() -> dict[str, Any]:
    """The searched keys and their Optuna distributions; a weight is searched only when its term is on."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    switch = CategoricalDistribution([True, False])
    return {"hfd": switch, "bsd_region": switch, "bsd_pixel": switch,
            "beta": FloatDistribution(0.01, 2.0, log=True),    # HFD
            "gamma": FloatDistribution(0.05, 10.0, log=True),  # BSD-R or BSD-P
            "alpha": FloatDistribution(0.05, 10.0, log=True)}  # BSD-P


def active(name: str, switches: dict[str, bool]) -> bool:
    """Whether weight ``name`` has an effect under ``switches`` (a switch is always active)."""
    needs = {"beta": ("hfd",), "gamma": ("bsd_region", "bsd_pixel"), "alpha": ("bsd_pixel",)}
    return any(switches[s] for s in needs.get(name, ())) or name in SWITCHES


def search_space(trial) -> dict[str, Any]:
    """Optuna define-by-run space over the switches and, conditionally, the weights they use.

    At least one term is on: with HFD and BSD-R off, BSD-P is on (returned as a constant), since every
    term off is Vanilla's training, which the search has already run on every seed.
    """
    dists = space()
    switches = {name: trial.suggest_categorical(name, dists[name].choices) for name in ("hfd", "bsd_region")}
    fixed = {} if any(switches.values()) else {"bsd_pixel": True}
    switches["bsd_pixel"] = fixed.get("bsd_pixel") or trial.suggest_categorical("bsd_pixel", dists["bsd_pixel"].choices)
    for name in ("beta", "gamma", "alpha"):
        if active(name, switches):
            trial.suggest_float(name, dists[name].low, dists[name].high, log=dists[name].log)
    return fixed


@dataclass(frozen=True)
class SearchPlan:
    """What every trial of a replicated search shares, written into its params.json (``SEARCH_KEY``).

    Attributes:
        objective: a key of ``OBJECTIVES``.
        seeds: replicates per setting (seeds 0..seeds-1).
        vanilla: seed -> (CNN, ViT) final mIoU of that seed's Vanilla run, the reference of the gains.
    """

    objective: str
    seeds: int
    vanilla: dict[int, tuple[float, float]]

    @property
    def objectives(self) -> tuple[tuple[str, str], ...]:
        return OBJECTIVES[self.objective]

    def to_json(self) -> str:
        from optuna.distributions import distribution_to_json
        return json.dumps({"objective": self.objective, "objectives": [list(o) for o in self.objectives],
                           "seeds": self.seeds, "vanilla": {str(s): list(v) for s, v in self.vanilla.items()},
                           "space": {k: distribution_to_json(d) for k, d in space().items()},
                           "paper_default": PAPER_DEFAULT})

    @classmethod
    def from_json(cls, text: str) -> SearchPlan:
        data = json.loads(text)
        return cls(data["objective"], int(data["seeds"]),
                   {int(s): (float(v[0]), float(v[1])) for s, v in data["vanilla"].items()})

    def summary(self, done: dict[int, dict[str, float]]) -> dict[str, Any]:
        """Mean and spread over the finished replicates ``done`` (seed -> its final mIoUs and time)."""
        rows = [self._gains(done[seed]) for seed in sorted(done)]
        out: dict[str, Any] = {"replicates": rows, "seeds_done": len(rows)}
        for key in ("gain_cnn", "gain_vit", "miou_cnn", "miou_vit", "time_s"):
            values = [row[key] for row in rows]
            out[key] = statistics.fmean(values)
            out[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else math.nan
        out["gain_sum"] = out["gain_cnn"] + out["gain_vit"]
        out["miou_sum"] = out["miou_cnn"] + out["miou_vit"]
        return out

    def _gains(self, replicate: dict[str, float]) -> dict[str, float]:
        cnn, vit = self.vanilla[int(replicate["seed"])]
        return {**replicate, "vanilla_cnn": cnn, "vanilla_vit": vit,
                "gain_cnn": replicate["miou_cnn"] - cnn, "gain_vit": replicate["miou_vit"] - vit}


def run_setting(config: dict[str, Any], *, storage: str, experiment: str, resources) -> None:
    """A Tune function trainable: one proposed setting trained on seeds 0..N-1, one Ray Train run each.

    Each finished replicate is reported with a Tune checkpoint listing the replicates so far; a restarted
    trial (Tune's retry, ``--resume``) starts from it and trains only the others. The last report holds
    the means the sampler receives, with ``epoch`` = the runs' epochs (the setting is finished).
    """
    import ray.tune
    config = dict(config)
    plan = SearchPlan.from_json(config.pop(SEARCH_KEY))
    done = kept_replicates(ray.tune.get_checkpoint())
    for seed in range(plan.seeds):
        if seed in done:
            continue
        done[seed] = train_replicate(config, seed, storage=storage, experiment=experiment, resources=resources)
        with tempfile.TemporaryDirectory() as folder:
            Path(folder, REPLICATES_FILE).write_text(json.dumps([done[s] for s in sorted(done)]))
            ray.tune.report({**plan.summary(done), "replicate": seed},
                            checkpoint=ray.tune.Checkpoint.from_directory(folder))
    ray.tune.report({**plan.summary(done), "epoch": config["epochs"]})


def kept_replicates(checkpoint) -> dict[int, dict[str, float]]:
    """The replicates a restarted setting already finished (its Tune checkpoint), by seed."""
    if checkpoint is None:
        return {}
    with checkpoint.as_directory() as folder:
        return {int(r["seed"]): r for r in json.loads(Path(folder, REPLICATES_FILE).read_text())}


def train_replicate(config: dict[str, Any], seed: int, *, storage: str, experiment: str,
                    resources) -> dict[str, float]:
    """One seed of a setting: ``cotrain.launch.run_trial`` in its own folder; its final mIoUs and wall time."""
    import ray.train
    import ray.tune

    from cotrain.launch import TRAIN_SUBDIR, run_trial
    from cotrain.launch.storage import join_storage
    where = f"{experiment}/{REPLICATES_DIR}/seed{seed}"
    start = time.monotonic()
    try:
        run_trial({**config, "seed": seed}, storage=storage, experiment=where, resources=resources)
    except Exception as exc:
        raise ReplicateError(f"seed {seed} of this setting failed: {cause(exc)}") from exc
    run = join_storage(storage, where, TRAIN_SUBDIR, f"train-{ray.tune.get_context().get_trial_id()}")
    metrics = ray.train.Result.from_path(run).metrics or {}
    return {"seed": seed, "miou_cnn": float(metrics["miou_cnn"]), "miou_vit": float(metrics["miou_vit"]),
            "time_s": time.monotonic() - start}


def cause(exc: BaseException) -> str:
    """The last line of an error (Ray Train's errors end with the worker's own exception)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def run_search(argv: Optional[Sequence[str]] = None, description: str = "") -> int:
    """``sweeps/search.py``: Optuna over α, β, γ and the switches, one or several objectives and seeds."""
    parser = build_parser(description)
    parser.add_argument("--trials", type=int, default=8, help="number of settings Optuna proposes")
    parser.add_argument("--objective", default="delta", help=f"one of {', '.join(OBJECTIVES)}")
    parser.add_argument("--search-seed", type=int, default=0, help="Optuna sampler seed")
    args = parser.parse_args(argv)
    return guarded(lambda: _search(args))


def check_args(args: argparse.Namespace) -> None:
    """Every search flag, before anything runs; a bad one is a ``ConfigError`` (one line, exit 2)."""
    if args.objective not in OBJECTIVES:
        raise ConfigError(f"--objective {args.objective!r} is invalid: allowed: {', '.join(OBJECTIVES)}")
    for flag, value in (("--trials", args.trials), ("--seeds", args.seeds)):
        if value < 1:
            raise ConfigError(f"{flag} {value} is invalid: must be >= 1")
    if args.asha and (args.seeds > 1 or len(OBJECTIVES[args.objective]) > 1):
        raise ConfigError("--asha is invalid with --seeds > 1 or a multi-objective --objective: ASHA stops a "
                          "run mid-way, and a setting is then several runs (one per seed)")
    if getattr(args, "pretrain_epochs", None) is not None:
        raise ConfigError("--pretrain-epochs is invalid for the search: it is a grid sweeps' option")
    check_resume_named(args.resume, args.name)


def _search(args: argparse.Namespace) -> int:
    check_args(args)
    # No declared rows: make_tables renders a search from its own plan (analysis/search.py).
    spec = SweepSpec(script="search", table=TableSpec("search", "Optuna search"), cells=[{"method": "ours"}])
    name = args.name or default_name("search")
    base = base_config(args, spec, name)
    cnn, vit = pairs_for(args, spec)[0]
    base = base.replace(cnn=cnn, vit=vit, method="ours")
    if args.dry_run:
        return print_search_dry_run(base, args)
    check_storage(args.storage)
    from cotrain.cli import preflight, run_lock
    preflight(base, local=not args.cluster)
    with run_lock(args.storage, name):
        check_new_or_resume(args.storage, f"{name}-vanilla", args.resume)  # the first stage's folder
        note = random_start_note(args.trials)  # both searches sample with OptunaSearch's TPE
        if note:
            print(note, file=sys.stderr)
        if args.asha:
            return summarise(execute_search(args, base, name), args.storage, name)
        plan, found = execute_replicated(args, base, name)
    return summarise_search(plan, found, args.storage, name)


# Ray's OptunaSearch builds Optuna's TPESampler with its defaults: the first 10 trials of the study (the
# paper's default, enqueued, among them) are random draws; TPE models the results only from the 11th on.
TPE_STARTUP_TRIALS = 10


def random_start_note(trials: int) -> str | None:
    """A warning when every proposed setting of a ``trials``-setting search is a random draw."""
    if trials > TPE_STARTUP_TRIALS:
        return None
    return (f"note: {trials} settings are all within TPE's {TPE_STARTUP_TRIALS} random start-up trials: after the "
            f"paper's default every setting is a seeded random draw, whatever the results; --trials "
            f"{TPE_STARTUP_TRIALS + 1} or more for settings guided by the ones before")


def print_search_dry_run(base: TrainConfig, args: argparse.Namespace) -> int:
    """Settings × seeds and the Vanilla runs, with their estimated device-hours; nothing runs."""
    from cotrain.estimate import estimate_trial_seconds, resolved_device
    seeds = args.seeds
    runs = args.trials * seeds
    setting = estimate_trial_seconds(base.replace(**PAPER_DEFAULT))  # every term on: the slowest setting
    seconds = runs * setting + seeds * estimate_trial_seconds(base.replace(method="vanilla"))
    device = "GPU" if resolved_device(base.device) == "cuda" else "CPU"
    goals = ", ".join(f"{metric} {mode}" for metric, mode in OBJECTIVES[args.objective])
    print(f"{args.trials} settings x {seeds} seeds = {runs} runs, + {seeds} Vanilla runs (seeds 0-{seeds - 1}); "
          f"preset {base.preset}, {base.epochs} epochs, {base.cnn}+{base.vit} on {base.dataset}")
    print(f"  objective {args.objective} ({goals}); searched: {', '.join(space())}; "
          "the first setting is the paper's default (α=1, β=0.1, γ=1, every term on)")
    print(f"estimated {seconds / 3600:.2f} {device}-hours (one run per device; a setting's seeds run one "
          "after another)")
    note = random_start_note(args.trials)
    if note:
        print(note)
    return 0


@contextmanager
def partial_reports_allowed() -> Iterator[None]:
    """Let Tune accept reports without the objectives while the search runs.

    Tune refuses a result lacking the searcher's metrics; a setting's per-epoch reports (forwarded from
    its Train runs, for progress) cannot hold its mean gains, which exist only after its last seed.
    """
    previous = os.environ.get(STRICT_METRICS_ENV)
    os.environ[STRICT_METRICS_ENV] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(STRICT_METRICS_ENV, None)
        else:
            os.environ[STRICT_METRICS_ENV] = previous


def execute_replicated(args: argparse.Namespace, base: TrainConfig, name: str):
    """Vanilla on seeds 0..N-1 (``<name>-vanilla``), then the search (``<name>``): one trial per setting."""
    from ray.tune.search.optuna import OptunaSearch

    from cotrain.launch import ray_session, resume_stage, run_experiment
    common = run_options(args, name)
    storage = common["storage"]
    objectives = OBJECTIVES[args.objective]
    metrics, modes = [m for m, _ in objectives], [d for _, d in objectives]
    single = len(metrics) == 1
    with ray_session(cluster=args.cluster, quiet=args.quiet, resources=common["resources"]):
        vanilla_name = f"{name}-vanilla"
        vanilla = run_experiment(param_space(base.replace(method="vanilla"), [{}], args.seeds), name=vanilla_name,
                                 resume=resume_stage(args.resume, storage, vanilla_name), **common)
        plan = SearchPlan(args.objective, args.seeds, vanilla_references(vanilla))
        constants = {**{k: v for k, v in base.to_dict().items() if k not in SEARCHED}, SEARCH_KEY: plan.to_json()}
        searcher = OptunaSearch(space=search_space, metric=metrics[0] if single else metrics,
                                mode=modes[0] if single else modes, seed=args.search_seed,
                                points_to_evaluate=[PAPER_DEFAULT])
        with partial_reports_allowed():
            found = run_experiment(constants, name=name, search_alg=searcher, num_samples=args.trials,
                                   metric=metrics[0] if single else None, mode=modes[0] if single else None,
                                   resume=resume_stage(args.resume, storage, name), trainable=run_setting, **common)
    return plan, found


def vanilla_references(grid) -> dict[int, tuple[float, float]]:
    """seed -> (CNN, ViT) final mIoU of each Vanilla run; a failed one stops the search (no reference)."""
    from cotrain.launch import flatten_cell, trial_error
    found = {}
    for result in grid:
        metrics = result.metrics or {}
        if result.error or "miou_cnn" not in metrics:
            print("the Vanilla run of a seed did not finish: the gains of that seed have no reference",
                  file=sys.stderr)
            raise trial_error(result)
        found[int(flatten_cell(result.config)["seed"])] = (float(metrics["miou_cnn"]), float(metrics["miou_vit"]))
    return found


def pareto_front(values: Sequence[Sequence[float]], modes: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points (each a value per objective), by Optuna's ``Study.best_trials``."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["maximize" if m == "max" else "minimize" for m in modes])
    for index, point in enumerate(values):
        study.add_trial(optuna.trial.create_trial(values=list(point), user_attrs={"index": index}))
    return sorted(t.user_attrs["index"] for t in study.best_trials)


def summarise_search(plan: SearchPlan, found, storage: str, name: str) -> int:
    """One line per setting (front marked ``*``), failed ones with their cause; exit 0 when one finished."""
    metrics, modes = [m for m, _ in plan.objectives], [d for _, d in plan.objectives]
    results = list(found)
    finished = [r for r in results if not r.error and (r.metrics or {}).get("seeds_done") == plan.seeds]
    front = {id(finished[i]) for i in pareto_front([[r.metrics[m] for m in metrics] for r in finished], modes)}
    done = {id(r) for r in finished}
    print(f"\n{name}: {len(results)} settings x {plan.seeds} seeds, objective {plan.objective} "
          f"({', '.join(f'{m} {d}' for m, d in plan.objectives)}); gains over Vanilla of the same seed")
    for result in results:
        label = ", ".join(f"{k}={result.config[k]:.3g}" if isinstance(result.config[k], float) else
                          f"{k}={result.config[k]}" for k in SEARCHED if k in result.config)
        if id(result) not in done:
            print(f"  FAILED  {label}: {_failure(result)}")
            continue
        m = result.metrics
        print(f"  {'*' if id(result) in front else ' '} {label}: gain CNN {m['gain_cnn']:+.2f} ± "
              f"{m['gain_cnn_std']:.2f}, ViT {m['gain_vit']:+.2f} ± {m['gain_vit_std']:.2f}, {m['time_s']:.0f} s/run")
    print(f"front (*): {len(front)} of {len(finished)} finished settings; results: {storage}/{name} "
          f"(tables and plots: python analysis/make_tables.py --results {storage})")
    return 0 if finished else 1


def _failure(result) -> str:
    if not result.error:
        return "did not finish"
    text = str(result.error)
    marker = f"{ReplicateError.__name__}: "
    return text.rsplit(marker, 1)[-1].splitlines()[0][:200] if marker in text else cause(result.error)[:200]


def execute_search(args: argparse.Namespace, base: TrainConfig, name: str):
    """With ``--asha``: Vanilla first (``<name>-vanilla``), then one Train run per trial (``<name>``), the
    weak ones stopped early. Δ = miou_sum − the Vanilla pair's miou_sum, so maximising miou_sum maximises Δ.
    """
    from ray.tune.search.optuna import OptunaSearch

    from cotrain.launch import ray_session, resume_stage, run_experiment
    common = run_options(args, name)
    storage = common["storage"]
    metric = OBJECTIVES[args.objective][0][0]
    constants = {k: v for k, v in base.to_dict().items() if k not in SEARCHED}
    with ray_session(cluster=args.cluster, quiet=args.quiet, resources=common["resources"]):
        vanilla_name = f"{name}-vanilla"
        vanilla = run_experiment(param_space(base.replace(method="vanilla"), [{}], 1), name=vanilla_name,
                                 resume=resume_stage(args.resume, storage, vanilla_name), **common)
        searcher = OptunaSearch(space=search_space, metric=metric, mode="max", seed=args.search_seed)
        found = run_experiment(constants, name=name, search_alg=searcher, num_samples=args.trials,
                               metric=metric, mode="max", resume=resume_stage(args.resume, storage, name),
                               scheduler=asha_scheduler(base), **common)
    _print_best(found, vanilla, metric)
    return list(vanilla) + list(found)


def _print_best(found, vanilla, metric: str) -> None:
    best = found.get_best_result(metric=metric, mode="max")
    reference = next((r.metrics for r in vanilla if r.metrics), {})
    chosen = ", ".join(f"{k}={best.config.get(k)}" for k in SEARCHED if k in best.config)
    line = f"best ({metric}): {chosen} -> CNN {best.metrics.get('miou_cnn', float('nan')):.2f}, " \
           f"ViT {best.metrics.get('miou_vit', float('nan')):.2f}"
    if reference:
        line += f", Δ {best.metrics.get('miou_sum', float('nan')) - reference.get('miou_sum', float('nan')):+.2f}"
    print(line)
