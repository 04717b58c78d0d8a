"""The Optuna search (``sweeps/search.py``): TPE over α, β, γ and the HFD / BSD switches after a Vanilla
reference, with optional ASHA early stopping. The grid sweeps' shared parts come from ``cotrain.sweep``."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, Optional

from cotrain.cli import check_resume_named
from cotrain.config import ConfigError, TrainConfig
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
    print_dry_run,
    require_new_or_resumable,
    run_options,
    summarise,
)
from cotrain.tables import TableSpec

OBJECTIVES = {"delta": "miou_sum", "miou_cnn": "miou_cnn", "miou_vit": "miou_vit"}


def search_space(trial) -> dict[str, Any]:
    """Optuna define-by-run space over the switches and, conditionally, the weights they use."""
    hfd = trial.suggest_categorical("hfd", [True, False])
    bsd_region = trial.suggest_categorical("bsd_region", [True, False])
    bsd_pixel = trial.suggest_categorical("bsd_pixel", [True, False])
    if hfd:
        trial.suggest_float("beta", 0.01, 2.0, log=True)
    if bsd_region or bsd_pixel:
        trial.suggest_float("gamma", 0.05, 10.0, log=True)
    if bsd_pixel:
        trial.suggest_float("alpha", 0.05, 10.0, log=True)
    return {}


def run_search(argv: Optional[Sequence[str]] = None, description: str = "") -> int:
    """``sweeps/search.py``: Optuna (TPE) over α, β, γ and the switches, ASHA early stopping."""
    parser = build_parser(description)
    parser.add_argument("--trials", type=int, default=8, help="number of Optuna trials")
    parser.add_argument("--objective", default="delta", help=f"one of {', '.join(OBJECTIVES)}")
    parser.add_argument("--search-seed", type=int, default=0, help="Optuna sampler seed")
    args = parser.parse_args(argv)
    return guarded(lambda: _search(args))


def _search(args: argparse.Namespace) -> int:
    if args.objective not in OBJECTIVES:
        raise ConfigError(f"--objective {args.objective!r} is invalid: allowed: {', '.join(OBJECTIVES)}")
    if args.trials < 1:
        raise ConfigError(f"--trials {args.trials} is invalid: must be >= 1")
    check_resume_named(args.resume, args.name)
    # No declared rows: a search is read from its own summary, not rendered as a table.
    spec = SweepSpec(script="search", table=TableSpec("search", "Optuna search"), cells=[{"method": "ours"}])
    name = args.name or default_name("search")
    base = base_config(args, spec, name)
    cnn, vit = pairs_for(args, spec)[0]
    base = base.replace(cnn=cnn, vit=vit, method="ours")
    if args.dry_run:
        return print_dry_run(base, [{"method": "ours"}], args.trials)
    check_storage(args.storage)
    require_new_or_resumable(args, name)
    from cotrain.cli import preflight
    preflight(base)
    return summarise(execute_search(args, base, name), args.storage, name)


def execute_search(args: argparse.Namespace, base: TrainConfig, name: str):
    """Vanilla reference first (``<name>-vanilla``), then the Optuna search (``<name>``).

    Δ = miou_sum − the Vanilla pair's miou_sum, so maximising miou_sum maximises Δ.
    """
    from ray.tune.search.optuna import OptunaSearch

    from cotrain.launch import experiment_exists, ray_session, run_experiment
    common = run_options(args, name)
    storage = common["storage"]
    metric = OBJECTIVES[args.objective]
    constants = {k: v for k, v in base.to_dict().items() if k not in SEARCHED}
    with ray_session(cluster=args.cluster, quiet=args.quiet, resources=common["resources"]):
        vanilla_name = f"{name}-vanilla"
        vanilla = run_experiment(param_space(base.replace(method="vanilla"), [{}], 1), name=vanilla_name,
                                 resume=args.resume and experiment_exists(storage, vanilla_name), **common)
        searcher = OptunaSearch(space=search_space, metric=metric, mode="max", seed=args.search_seed)
        found = run_experiment(constants, name=name, search_alg=searcher, num_samples=args.trials,
                               metric=metric, mode="max", resume=args.resume,
                               scheduler=asha_scheduler(base) if args.asha else None, **common)
    _print_best(found, vanilla, metric)
    return list(vanilla) + list(found)


def _print_best(found, vanilla, metric: str) -> None:
    best = found.get_best_result(metric=metric, mode="max")
    reference = next((r.metrics for r in vanilla if r.metrics), {})
    keys = ("hfd", "bsd_region", "bsd_pixel", "alpha", "beta", "gamma")
    chosen = ", ".join(f"{k}={best.config.get(k)}" for k in keys if k in best.config)
    line = f"best ({metric}): {chosen} -> CNN {best.metrics.get('miou_cnn', float('nan')):.2f}, " \
           f"ViT {best.metrics.get('miou_vit', float('nan')):.2f}"
    if reference:
        line += f", Δ {best.metrics.get('miou_sum', float('nan')) - reference.get('miou_sum', float('nan')):+.2f}"
    print(line)
