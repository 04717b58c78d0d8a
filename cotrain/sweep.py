"""The sweep runner shared by every script in ``sweeps/``: one set of flags, one grid per table.

A table script only declares its cells (``SweepSpec``); this module validates every
cell's config before Ray starts, builds the Tune grid (cells × pairs × seeds), runs it
through ``cotrain.launch`` and prints where the results are.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Sequence

from cotrain.cli import (
    OneLineParser,
    add_mlflow_flag,
    check_resume_named,
    check_storage,
    default_name,
    disk_full_named,
    fail,
    guarded,
)
from cotrain.config import PRESETS, TrainConfig, resolve
from cotrain.errors import ConfigError
from cotrain.methods import needs_teachers
from cotrain.tables import LAYOUT_KEY, TableSpec

VANILLA: dict[str, Any] = {"method": "vanilla"}
SEARCHED = ("hfd", "bsd_region", "bsd_pixel", "alpha", "beta", "gamma")  # what search.py varies
PAPER_PAIR = "mobilenet_v2+mit_b1"
# The paper's students are too slow for a CPU run; smoke/cpu presets swap in the smallest ones.
_SMALLEST = {"mobilenet_v2+mit_b1": "mobilenet_v2+mit_b0", "resnet50+mit_b2": "resnet18+mit_b0",
             "mobilenet_v2+mit_b2": "mobilenet_v2+mit_b0", "resnet50+mit_b1": "resnet18+mit_b0"}
SMALL_PAIRS = {"smoke": _SMALLEST, "cpu": {k: v for k, v in _SMALLEST.items() if k != PAPER_PAIR}}


@dataclass(frozen=True)
class SweepSpec:
    """One table's sweep: the table it fills and one config per row.

    Attributes:
        script: the script's name (``alpha_sensitivity``); the default experiment name starts with it.
        table: the table it fills, declared once (``cotrain.tables.TableSpec``); every trial carries it.
        cells: config overrides, one per table row; include ``VANILLA`` for Δ.
        fixed: settings every cell shares (docs/method.md, "Which configuration each table uses").
        pairs: default ``cnn+vit`` pairs.
        metric: what a search optimises (grids only record it).
    """

    script: str
    table: TableSpec
    cells: list[dict[str, Any]]
    fixed: dict[str, Any] = field(default_factory=dict)
    pairs: tuple[str, ...] = (PAPER_PAIR,)
    metric: str = "miou_sum"
    staged: bool = False  # Vanilla first, then the other cells (offline KD needs Vanilla teachers)

    @classmethod
    def from_rows(cls, script: str, table: TableSpec, rows: list[tuple[dict[str, Any], tuple[str, ...]]],
                  **rest: Any) -> SweepSpec:
        """A sweep declared row by row: ``(cell, its label cells)``, in the table's order."""
        fixed = rest.get("fixed", {})
        labelled = table.with_rows([({**fixed, **cell}, labels) for cell, labels in rows])
        return cls(script=script, table=labelled, cells=[cell for cell, _ in rows], **rest)


def build_parser(description: str) -> argparse.ArgumentParser:
    """The flags every sweep script shares."""
    p = OneLineParser(description=description)
    p.add_argument("--cluster", action="store_true", help="connect to a running Ray cluster (RAY_ADDRESS or auto)")
    p.add_argument("--dataset", default="builtin", help="builtin, voc, cityscapes, camvid")
    p.add_argument("--data-root", default=None, help="dataset root (builtin: generated when absent)")
    p.add_argument("--pair", default=None, help="cnn+vit pair(s), comma-separated (default: the table's)")
    p.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="smoke, cpu or paper")
    p.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    p.add_argument("--seeds", type=int, default=1, help="repeat every cell with seeds 0..N-1")
    p.add_argument("--methods", default=None,
                   help="run only the cells of these methods, comma-separated, e.g. vanilla,ours (default: all)")
    p.add_argument("--rows", default=None,
                   help="run only these rows of the table, numbered from 1 in the order --dry-run lists them, e.g. 2,3 "
                        "(default: all); gains need the Vanilla row in the same experiment")
    p.add_argument("--storage", default="results", help="results folder or URI (s3://...); shared for multi-node")
    p.add_argument("--name", default=None, help="experiment name (default: <script>-<time>)")
    p.add_argument("--resume", action="store_true", help="resume the experiment --name after an interruption")
    p.add_argument("--gpus-per-trial", type=float, default=None, help="GPU share per worker, e.g. 0.5 packs two")
    p.add_argument("--cpus-per-trial", type=float, default=None,
                   help="CPUs per worker (default: 1, or all local CPUs / 2)")
    p.add_argument("--workers-per-trial", type=int, default=1, help="data-parallel Train workers per trial (DDP)")
    p.add_argument("--pretrain-epochs", type=int, default=None, metavar="E",
                   help="first train Vanilla E epochs per pair and seed (<name>-pretrain), then start every cell "
                        "from those students (init_from) for --epochs more: the pre-trained regime")
    p.add_argument("--asha", action="store_true", help="stop weak trials early (ASHA on the epoch)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other config key")
    p.add_argument("--dry-run", action="store_true", help="print the trials and estimated device-hours, run nothing")
    p.add_argument("--gpus", type=int, default=None, metavar="N",
                   help="GPUs the dry run plans the wall time for (default: this machine's, else 1)")
    p.add_argument("--quiet", action="store_true", help="less console output (Tune's table stays)")
    p.add_argument("--portable", action="store_true",
                   help="CPU numerics identical on any x86 machine with AVX2 (as --set portable=true)")
    add_mlflow_flag(p)
    return p


def pairs_for(args: argparse.Namespace, spec: SweepSpec) -> list[tuple[str, str]]:
    """The (cnn, vit) pairs to run; ``--pair`` wins, presets may swap in small students."""
    names = args.pair.split(",") if args.pair else [SMALL_PAIRS.get(args.preset, {}).get(p, p) for p in spec.pairs]
    pairs = []
    for name in names:
        if name.count("+") != 1:
            raise ConfigError(f"--pair {name!r} is invalid: expected CNN+VIT, e.g. {PAPER_PAIR}")
        cnn, vit = name.split("+")
        pairs.append((cnn, vit))
    return pairs


def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``--set key=value`` pairs, values parsed as YAML scalars."""
    import yaml
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} is invalid: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def base_config(args: argparse.Namespace, spec: SweepSpec, name: str) -> TrainConfig:
    overrides = {"dataset": args.dataset, "data_root": args.data_root, "table": spec.table.id, "sweep": name,
                 "out": args.storage, "name": name, "workers": args.workers_per_trial,
                 **({"epochs": args.epochs} if args.epochs else {}), **({"portable": True} if args.portable else {}),
                 **spec.fixed, **parse_sets(args.set)}
    return resolve(args.preset, overrides=overrides)


def select_methods(base: TrainConfig, spec: SweepSpec, methods: Optional[str]) -> SweepSpec:
    """``spec`` with only the cells whose method is in ``methods`` (comma-separated; None: all)."""
    if not methods:
        return spec
    wanted = [m.strip() for m in methods.split(",") if m.strip()]
    present = list(dict.fromkeys(cell.get("method", base.method) for cell in spec.cells))
    unknown = [m for m in wanted if m not in present]
    if unknown or not wanted:
        raise ConfigError(f"--methods {methods!r} is invalid: the {spec.script} sweep has {', '.join(present)}")
    return replace(spec, cells=[c for c in spec.cells if c.get("method", base.method) in wanted])


def select_rows(spec: SweepSpec, rows: Optional[str]) -> SweepSpec:
    """``spec`` with only the cells of the table rows ``rows`` (comma-separated, from 1; None: all)."""
    if not rows:
        return spec
    try:
        wanted = [int(r) for r in rows.split(",") if r.strip()]
    except ValueError:
        wanted = []
    if not wanted or any(not 1 <= r <= len(spec.cells) for r in wanted):
        raise ConfigError(f"--rows {rows!r} is invalid: the {spec.script} sweep's rows are numbers from 1 to "
                          f"{len(spec.cells)}, comma-separated")
    return replace(spec, cells=[c for i, c in enumerate(spec.cells, start=1) if i in wanted])


def expand_cells(base: TrainConfig, spec: SweepSpec, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every (pair, cell) as a dict of overrides, each validated as a full config now."""
    cells = []
    for cnn, vit in pairs:
        for cell in spec.cells:
            merged = {"cnn": cnn, "vit": vit, **cell}
            base.replace(**merged)  # raises ConfigError naming the bad value
            cells.append(merged)
    return cells


def param_space(base: TrainConfig, cells: list[dict[str, Any]], seeds: Optional[int],
                table: Optional[TableSpec] = None) -> dict[str, Any]:
    """Tune's space: the shared config, a grid over whole cells and (unless cells fix it) over seeds,
    and the declared table (written into each trial's params.json for make_tables.py).

    A key that some cell overrides is drawn from the trial's cell (``FromCell``, resolved by Tune after
    the grid), so the flat keys every tracker shows (params.json, TensorBoard's hparams, MLflow's
    params) are the values the trial ran with, not the base config's.
    """
    from ray import tune
    space = base.to_dict()
    if table is not None:
        space[LAYOUT_KEY] = table.to_json()
    gridded = {"seed"} if seeds is not None else set()
    for key in dict.fromkeys(k for cell in cells for k in cell if k not in gridded):
        space[key] = tune.sample_from(FromCell(key, space.get(key)))
    space["cell"] = tune.grid_search(cells)
    if seeds is not None:
        space["seed"] = tune.grid_search(list(range(seeds)))
    return space


@dataclass(frozen=True)
class FromCell:
    """A trial's value of ``key``: its cell's, else the shared config's (``default``). A class, not a lambda:
    Tune pickles the space into the experiment, and a resumed sweep reads it back."""

    key: str
    default: Any

    def __call__(self, config: dict[str, Any]) -> Any:
        cell = config.get("cell")
        return cell.get(self.key, self.default) if isinstance(cell, dict) else self.default


def resources_for(args: argparse.Namespace, use_gpu: bool):
    from cotrain.launch import Resources, local_cpu_share
    gpus = args.gpus_per_trial if args.gpus_per_trial is not None else (1.0 if use_gpu else 0.0)
    if args.cpus_per_trial is not None:
        cpus = args.cpus_per_trial
    elif args.cluster or gpus > 0:
        cpus = 1.0
    else:  # two trials at a time share the local CPUs (the trial actors take 0.01 CPU each)
        cpus = local_cpu_share(2 * args.workers_per_trial)
    return Resources(workers=args.workers_per_trial, cpus_per_worker=cpus, gpus_per_worker=gpus)


def asha_scheduler(base: TrainConfig):
    from ray.tune.schedulers import ASHAScheduler
    # Each trial reports once per epoch; the metric comes from the Tuner (miou_sum for grids).
    return ASHAScheduler(time_attr="training_iteration", max_t=base.epochs,
                         grace_period=max(1, base.epochs // 4), reduction_factor=2)


def run_sweep(spec: SweepSpec, argv: Optional[Sequence[str]] = None,
              description: str = "") -> int:
    """Entry point of a table script."""
    args = build_parser(description or f"Sweep for {spec.table.caption}").parse_args(argv)
    return guarded(lambda: _run(spec, args))


def _run(spec: SweepSpec, args: argparse.Namespace) -> int:
    check_resume_named(args.resume, args.name)
    if args.seeds < 1:
        raise ConfigError(f"--seeds {args.seeds} is invalid: must be >= 1")
    if args.pretrain_epochs is not None and args.pretrain_epochs < 1:
        raise ConfigError(f"--pretrain-epochs {args.pretrain_epochs} is invalid: must be >= 1")
    name = args.name or default_name(spec.script)
    base = base_config(args, spec, name)
    chosen = select_methods(base, select_rows(spec, args.rows), args.methods)
    cells = expand_cells(base, chosen, pairs_for(args, spec))
    if args.dry_run:
        return print_dry_run(base, cells, args.seeds, args.pretrain_epochs, args.gpus, args.gpus_per_trial)
    check_storage(args.storage)
    from cotrain.cli import preflight, run_lock
    preflight(base, local=not args.cluster)
    with run_lock(args.storage, name), disk_full_named(args.storage, name):
        require_new_or_resumable(args, name)
        # Stages exist for frozen teachers (offline KD, offline IFVD); without such a cell one grid packs better.
        staged = spec.staged and any(needs_teachers(c) for c in cells)
        if args.pretrain_epochs is not None:
            grid = execute_pretrained(spec, args, base, cells, name)
        elif staged:
            grid = execute_staged(spec, args, base, cells, name)
        else:
            grid = execute(spec, args, base, cells, name)
    return summarise(grid, args.storage, name)


def require_new_or_resumable(args: argparse.Namespace, name: str) -> None:
    from cotrain.cli import check_new_or_resume
    first = f"{name}-pretrain" if args.pretrain_epochs is not None else name  # the first stage's folder
    check_new_or_resume(args.storage, first, args.resume)


def run_options(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """What every ``run_experiment`` call of a sweep shares: storage, resources, verbosity, tracking.

    With ``--mlflow`` every stage of the sweep logs to one MLflow experiment, ``name``; an interrupted stage
    says to resume ``name`` (the command's), not the stage's own experiment.
    """
    from cotrain.launch import absolute_storage, mlflow_callback
    storage = absolute_storage(args.storage)
    callbacks = [mlflow_callback(args.mlflow, storage, name)] if args.mlflow is not None else None
    return dict(storage=storage, resources=resources_for(args, _cuda()), verbose=1 if args.quiet else 2,
                callbacks=callbacks, command_name=name)


def execute(spec: SweepSpec, args: argparse.Namespace, base: TrainConfig, cells: list[dict], name: str):
    from cotrain.launch import ray_session, run_experiment
    common = run_options(args, name)
    with ray_session(cluster=args.cluster, quiet=args.quiet, resources=common["resources"]):
        return run_experiment(param_space(base, cells, args.seeds, spec.table), name=name, resume=args.resume,
                              scheduler=asha_scheduler(base) if args.asha else None,
                              metric="miou_sum" if args.asha else None, **common)


def execute_staged(spec: SweepSpec, args: argparse.Namespace, base: TrainConfig, cells: list[dict], name: str):
    """Stage 1: the Vanilla cells in ``<name>``; stage 2: the rest in ``<name>-kd``, offline KD taught
    by the stage-1 checkpoint of the same pair and seed."""
    from cotrain.launch import ray_session, resume_stage, run_experiment
    first_cells = [c for c in cells if c.get("method") == "vanilla"]
    later_cells = [c for c in cells if c.get("method") != "vanilla"]
    common = run_options(args, name)
    storage = common["storage"]
    with ray_session(cluster=args.cluster, quiet=args.quiet, resources=common["resources"]):
        first = run_experiment(param_space(base, first_cells, args.seeds, spec.table), name=name,
                               resume=args.resume, **common)
        teachers = teacher_checkpoints(first, storage, name)
        second_cells = with_teachers(later_cells, teachers, args.seeds)
        second_name = f"{name}-kd"
        second = run_experiment(param_space(base, second_cells, None, spec.table), name=second_name,
                                resume=resume_stage(args.resume, storage, second_name), **common)
    return list(first) + list(second)


def execute_pretrained(spec: SweepSpec, args: argparse.Namespace, base: TrainConfig, cells: list[dict], name: str):
    """The pre-trained regime. Stage 1 (``<name>-pretrain``): Vanilla, ``--pretrain-epochs`` epochs, per pair
    and seed. Stage 2 (``<name>``): every cell, Vanilla included, starts both students from stage 1's
    checkpoint of the same pair and seed (``init_from``) and trains ``base.epochs`` more; offline KD's
    teachers are those same checkpoints."""
    from cotrain.launch import ray_session, resume_stage, run_experiment
    first_name = f"{name}-pretrain"
    pairs = list(dict.fromkeys((c["cnn"], c["vit"]) for c in cells))
    first_cells = [{"cnn": cnn, "vit": vit, **VANILLA} for cnn, vit in pairs]
    # Its own sweep name: make_tables shows the starting point as its own table, not as rows of the main one.
    epochs = args.pretrain_epochs
    first_base = base.replace(epochs=epochs, sweep=first_name, name=first_name)
    first_table = replace(spec.table, caption=f"{spec.table.caption}: the Vanilla pre-training ({epochs} epochs)")
    table = replace(spec.table, caption=f"{spec.table.caption}, from Vanilla students of {epochs} epochs")
    common = run_options(args, name)
    storage = common["storage"]
    with ray_session(cluster=args.cluster, quiet=args.quiet, resources=common["resources"]):
        first = run_experiment(param_space(first_base, first_cells, args.seeds, first_table), name=first_name,
                               resume=resume_stage(args.resume, storage, first_name), **common)
        starts = teacher_checkpoints(first, storage, first_name)
        second_cells = with_starts(cells, starts, args.seeds)
        second = run_experiment(param_space(base, second_cells, None, table), name=name,
                                resume=resume_stage(args.resume, storage, name), **common)
    return list(first) + list(second)


def teacher_checkpoints(grid, storage: str, name: str) -> dict[tuple[str, str, int], str]:
    """(cnn, vit, seed) -> newest checkpoint folder of each finished Vanilla trial."""
    from pathlib import Path

    from cotrain.launch import TRAIN_SUBDIR, flatten_cell
    found = {}
    for result in grid:
        if result.error or not result.metrics:
            continue
        cfg = flatten_cell(result.config)
        folder = Path(storage, name, TRAIN_SUBDIR, f"train-{result.metrics['trial_id']}")
        checkpoints = sorted(folder.glob("checkpoint_*/checkpoint.pt"))
        if checkpoints:
            found[(cfg["cnn"], cfg["vit"], cfg["seed"])] = str(checkpoints[-1].parent)
    return found


def with_teachers(cells: list[dict], teachers: dict, seeds: int) -> list[dict]:
    """Fold seeds into the cells; cells with frozen teachers (offline KD, IFVD) get their Vanilla teachers
    (skipped if none finished)."""
    return with_checkpoints(cells, teachers, seeds, needs_teachers, _teachers)


def with_starts(cells: list[dict], starts: dict, seeds: int) -> list[dict]:
    """Fold seeds into the cells; every cell starts from the Vanilla checkpoint of its pair and seed
    (``init_from``), and frozen teachers (offline KD, IFVD) are it too."""
    return with_checkpoints(cells, starts, seeds, lambda cell: True,
                            lambda cell, path: {"init_from": path, **_teachers(cell, path)})


def _teachers(cell: dict, path: str) -> dict:
    return {"teacher_cnn": path, "teacher_vit": path} if needs_teachers(cell) else {}


def with_checkpoints(cells: list[dict], checkpoints: dict, seeds: int, needs: Callable[[dict], bool],
                     hand_over: Callable[[dict, str], dict]) -> list[dict]:
    """Fold seeds into the cells and give each the keys ``hand_over(cell, path)`` takes from stage 1's
    checkpoint of its pair and seed; a cell that ``needs`` one whose checkpoint is missing is skipped."""
    out = []
    for cell in cells:
        for seed in range(seeds):
            path = checkpoints.get((cell["cnn"], cell["vit"], seed))
            if path is None and needs(cell):
                print(f"warning: no finished Vanilla trial for {cell['cnn']}+{cell['vit']} seed {seed}; "
                      f"its {cell.get('method')} cell is skipped", file=sys.stderr)
                continue
            out.append({**cell, "seed": seed, **(hand_over(cell, path) if path else {})})
    return out


def summarise(grid, storage: str, name: str) -> int:
    """Print one line per trial and where the files are; exit 0 when every trial finished."""
    failed = 0
    print(f"\n{name}: {len(grid)} trials")
    for result in grid:
        cfg = result.config or {}
        cell = {**cfg, **cfg.get("cell", {})}
        searched = {k: cell[k] for k in SEARCHED if k in cell}
        label = ", ".join(f"{k}={v}" for k, v in (cfg.get("cell") or searched).items())
        if result.error:
            failed += 1
            print(f"  FAILED  seed={cell.get('seed')} {label}: {str(result.error).splitlines()[0][:160]}")
            continue
        m = result.metrics or {}
        print(f"  seed={cell.get('seed')} {label}: mIoU CNN {m.get('miou_cnn', float('nan')):.2f} "
              f"ViT {m.get('miou_vit', float('nan')):.2f}")
    print(f"results: {storage}/{name}  (tables: python analysis/make_tables.py --results {storage}; "
          f"curves: tensorboard --logdir {storage}/{name})")
    return 1 if failed else 0


def print_dry_run(base: TrainConfig, cells: list[dict], seeds: int, pretrain_epochs: Optional[int] = None,
                  gpus: Optional[int] = None, gpus_per_trial: Optional[float] = None) -> int:
    from cotrain.estimate import estimate_trial_seconds, resolved_device
    stages = stage_configs(base, cells, seeds, pretrain_epochs)
    seconds = sum(estimate_trial_seconds(cfg) for stage in stages for cfg in stage)
    device = "GPU" if resolved_device(base.device) == "cuda" else "CPU"  # --set device=cuda: plan GPUs from here
    print(f"{len(cells) * seeds} trials ({len(cells)} cells x {seeds} seeds), preset {base.preset}, "
          f"{base.epochs} epochs")
    if pretrain_epochs is not None:
        print(f"first {len(stages[0])} Vanilla pre-training trials of {pretrain_epochs} epochs; every cell "
              "starts from the one of its pair and seed")
    for cell in cells:
        print("  " + ", ".join(f"{k}={v}" for k, v in cell.items()))
    if device == "GPU":
        for line in gpu_plan_lines(stages, gpus, gpus_per_trial):
            print(line)
    else:
        print(f"estimated {seconds / 3600:.2f} {device}-hours (one trial per device)")
    return 0


def stage_configs(base: TrainConfig, cells: list[dict], seeds: int,
                  pretrain_epochs: Optional[int]) -> list[list[TrainConfig]]:
    """Every trial's config, stage by stage: the Vanilla pre-training of each pair and seed (with
    ``pretrain_epochs``), then the cells on every seed."""
    main = [base.replace(**cell) for cell in cells for _ in range(seeds)]
    if pretrain_epochs is None:
        return [main]
    pairs = list(dict.fromkeys((c["cnn"], c["vit"]) for c in cells))
    first = [base.replace(cnn=cnn, vit=vit, method="vanilla", epochs=pretrain_epochs)
             for cnn, vit in pairs for _ in range(seeds)]
    return [first, main]


def gpu_plan_lines(stages: list[list[TrainConfig]], gpus: Optional[int], gpus_per_trial: Optional[float]) -> list[str]:
    """The dry run's GPU lines: the step time and where it comes from (measured on a GPU and cached, or a
    reference), GPU-hours, and the wall time on ``gpus`` GPUs with ``gpus_per_trial`` (``cotrain.estimate``)."""
    from cotrain.estimate import plan_gpus
    if gpus is not None and gpus < 1:
        raise ConfigError(f"--gpus {gpus} is invalid: must be >= 1")
    share = 1.0 if gpus_per_trial is None else gpus_per_trial
    if share <= 0 or (share > 1 and share != int(share)):
        raise ConfigError(f"--gpus-per-trial {share:g} is invalid: must be a share of one GPU (0.5, 0.25...) "
                          "or a whole number")
    here = _gpu_count()
    try:
        plan = plan_gpus([stage for stage in stages if stage], gpus or here or 1, share)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    hint = [] if gpus or here else ["(planned for 1 GPU: --gpus N plans for N)"]
    return plan.lines() + hint


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def _gpu_count() -> int:
    import torch
    return torch.cuda.device_count()


if __name__ == "__main__":
    sys.exit(fail("run a script in sweeps/, e.g. python sweeps/alpha_sensitivity.py"))
