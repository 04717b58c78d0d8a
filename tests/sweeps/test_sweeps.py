"""The sweep platform through real Ray Tune + TorchTrainer (smoke preset), and its grids."""
from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ALPHA_SWEEP_CELLS, run_main, run_script

TABLE_SCRIPTS = {"components": 4, "bsd_components": 4, "pairs": 4, "alpha_sensitivity": 6,
                 "beta_sensitivity": 5, "gamma_sensitivity": 6, "methods": 12}
# The table scripts not run through Ray elsewhere (alpha: the session fixture; methods: its own test).
OTHER_TABLES = {"components": "4", "bsd_components": "5", "pairs": "6", "beta_sensitivity": "8",
                "gamma_sensitivity": "9"}


def trial_configs(experiment: Path) -> list[dict]:
    configs = []
    for params in sorted(experiment.glob("*/params.json")):
        config = json.loads(params.read_text())
        configs.append({**config, **config.pop("cell", {})})
    return configs


def last_report(trial_dir: Path) -> dict:
    return json.loads((trial_dir / "result.json").read_text().splitlines()[-1])


# The scripts in OTHER_TABLES also sweep (without Ray) below; their dry runs would only repeat that.
@pytest.mark.parametrize("script,trials", sorted((s, n) for s, n in TABLE_SCRIPTS.items() if s not in OTHER_TABLES))
def test_table_script_dry_run_lists_its_grid_and_writes_nothing(repo: Path, tmp_path: Path, script: str,
                                                                trials: int) -> None:
    done = run_script([str(repo / "sweeps" / f"{script}.py"), "--preset", "smoke", "--dry-run",
                       "--storage", str(tmp_path)], cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{trials} trials ({trials} cells x 1 seeds)")
    assert "method=vanilla" in done.stdout  # every table carries the Vanilla runs its Δ needs
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


def table_rows(markdown: str, heading: str) -> list[str]:
    """The body rows of the markdown table under ``heading``."""
    lines = markdown.split(heading, 1)[1].splitlines()
    rows = [line for line in lines[1:] if line.startswith("|")]
    return rows[2:]  # header and separator


@dataclass
class FakeResult:
    """What ``summarise`` and ``teacher_checkpoints`` read of a Tune result."""

    config: dict
    metrics: dict
    error: None = None


def expand_grid(space: dict) -> list[dict]:
    """Tune's grid expansion: one config per combination of the ``grid_search`` values, then the
    ``sample_from`` values resolved from it (as Tune does)."""
    from ray.tune.search.sample import Function
    grids = {k: v["grid_search"] for k, v in space.items() if isinstance(v, dict) and "grid_search" in v}
    configs = [{**space, **dict(zip(grids, values))} for values in itertools.product(*grids.values())]
    return [{k: v.func(c) if isinstance(v, Function) else v for k, v in c.items()} for c in configs]


def fake_run_experiment(space: dict, *, name: str, storage: str, **_: object) -> list[FakeResult]:
    """Stands in for Ray: writes each grid trial's ``params.json`` and one report per epoch as Tune would,
    with an mIoU made from the trial's cell (so every table cell gets a distinct, finite number)."""
    results = []
    for index, config in enumerate(expand_grid(space)):
        flat = {**config, **config.get("cell", {})}
        trial = Path(storage, name, f"run_trial_fake0_{index:05d}_{index}_seed={flat['seed']}")
        trial.mkdir(parents=True)
        (trial / "params.json").write_text(json.dumps(config))
        score = 20 + zlib.crc32(json.dumps(config.get("cell"), sort_keys=True).encode()) % 1000 / 100 + flat["seed"]
        reports = [{"epoch": e, "miou_cnn": score + e, "miou_vit": score + 2 * e, "trial_id": f"fake0_{index:05d}",
                    "config": config} for e in range(1, flat["epochs"] + 1)]
        (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in reports))
        results.append(FakeResult(config, reports[-1]))
    return results


@pytest.fixture
def without_ray(monkeypatch):
    """The sweep logic in this process: Ray's session and experiment replaced by ``fake_run_experiment``."""
    from cotrain import launch
    monkeypatch.setattr(launch, "ray_session", lambda **_: contextlib.nullcontext())
    monkeypatch.setattr(launch, "run_experiment", fake_run_experiment)


# Every table script's grid, table id and rendering, without Ray (the grid path through Ray: the alpha
# fixture; staged methods, Optuna, resume, faults and the cluster: their own real runs).
@pytest.mark.parametrize("script", sorted(OTHER_TABLES))
def test_table_script_sweeps_its_grid_and_renders_its_table(repo: Path, tmp_path: Path, script: str, without_ray,
                                                            monkeypatch, capsys) -> None:
    from analysis.make_tables import main as make_tables

    table, trials = OTHER_TABLES[script], TABLE_SCRIPTS[script]
    code = run_main([f"sweeps/{script}.py", "--preset", "smoke", "--storage", str(tmp_path), "--name", "t",
                     "--quiet"], monkeypatch)
    assert code == 0, capsys.readouterr()
    configs = trial_configs(tmp_path / "t")
    assert len(configs) == trials and {c["table"] for c in configs} == {table}
    capsys.readouterr()
    assert make_tables(["--results", str(tmp_path), "--no-plots"]) == 0
    shown = capsys.readouterr()
    assert f"({trials} trials: {trials} finished, 0 failed, 0 unfinished)" in shown.out + shown.err
    rows = table_rows(shown.out, f"### Table {table}:")
    assert rows and not any("—" in row for row in rows), shown.out  # every cell has a number
    assert (tmp_path / "tables" / f"table{table}.md").is_file()


@pytest.mark.slow
def test_alpha_sweep_leaves_tune_files_for_every_cell(alpha_sweep: Path) -> None:
    experiment = alpha_sweep / "alpha"
    configs = trial_configs(experiment)
    assert sorted((c["method"], c["alpha"]) for c in configs) == ALPHA_SWEEP_CELLS
    assert {c["table"] for c in configs} == {"7"} and not any(c["hfd"] for c in configs)  # Table 7: HFD off
    for trial in (p.parent for p in experiment.glob("*/params.json")):
        lines = (trial / "result.json").read_text().splitlines()
        assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
        report = json.loads(lines[-1])
        assert len(report["iou_cnn"]) == len(report["class_names"]) == 8
        selects_teacher = report["config"]["cell"]["method"] == "ours"  # BSD picks a teacher, Vanilla none
        assert 0 <= report["miou_cnn"] <= 100 and ("cnn_teaches_pixels" in report) == selects_teacher
        assert (trial / "progress.csv").is_file()
    checkpoints = list((experiment / "_train").glob("train-*/checkpoint_*/checkpoint.pt"))
    assert len({c.parent.parent for c in checkpoints}) == len(ALPHA_SWEEP_CELLS)


@pytest.mark.slow
def test_an_existing_experiment_needs_resume(repo: Path, alpha_sweep: Path, tmp_path: Path) -> None:
    # What --resume keeps (finished trials untouched): tests/reliability/test_driver_faults.py.
    storage = tmp_path / "copy"
    shutil.copytree(alpha_sweep, storage)
    script = str(repo / "sweeps" / "alpha_sensitivity.py")
    again = run_script([script, "--preset", "smoke", "--storage", str(storage), "--name", "alpha"], cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr


@pytest.mark.slow
def test_optuna_search_runs_its_trials_after_a_vanilla_reference(repo: Path, tmp_path: Path) -> None:
    # One setting through Ray (Optuna's proposals after the first: tests/sweeps/test_search.py, without Ray).
    done = run_script([str(repo / "sweeps" / "search.py"), "--preset", "smoke", "--trials", "1", "--asha",
                       "--storage", str(tmp_path), "--name", "s", "--quiet"], cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(list((tmp_path / "s").glob("*/result.json"))) == 1
    assert len(list((tmp_path / "s-vanilla").glob("*/result.json"))) == 1
    assert "best (miou_sum)" in done.stdout and "Δ" in done.stdout


def tiny_camvid(root: Path, train: int = 8, val: int = 2) -> Path:
    """SegNet CamVid layout with random 36x48 images (enough for a batch of 8)."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("val", val)):
        for i in range(count):
            arrays = ((split, rng.integers(0, 256, (36, 48, 3))), (f"{split}annot", rng.integers(0, 12, (36, 48))))
            for folder, array in arrays:
                (root / folder).mkdir(parents=True, exist_ok=True)
                Image.fromarray(array.astype(np.uint8)).save(root / folder / f"f{i:05d}.png")
    return root


def test_methods_flag_keeps_only_those_cells_and_a_dataset_preset(repo: Path, tmp_path: Path) -> None:
    data = tiny_camvid(tmp_path / "camvid")
    done = run_script([str(repo / "sweeps" / "methods.py"), "--preset", "cpu", "--dataset", "camvid",
                       "--data-root", str(data), "--pair", "mobilenet_v2+mit_b1", "--methods", "vanilla,ours",
                       "--seeds", "3", "--dry-run",
                       "--storage", str(tmp_path / "runs")], cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("6 trials (2 cells x 3 seeds)")
    assert "method=vanilla" in done.stdout and "method=ours" in done.stdout and "method=dml" not in done.stdout


def test_methods_flag_names_the_methods_a_sweep_has(repo: Path, tmp_path: Path) -> None:
    done = run_script([str(repo / "sweeps" / "methods.py"), "--preset", "smoke", "--methods", "vanilla,magic",
                       "--dry-run", "--storage", str(tmp_path)], cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert "--methods 'vanilla,magic' is invalid" in done.stderr and "offline_kd" in done.stderr


def test_rows_flag_runs_only_those_rows_of_the_table(repo: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    code = run_main([str(repo / "sweeps" / "bsd_components.py"), "--preset", "smoke", "--rows", "2,3", "--seeds",
                     "2", "--dry-run"], monkeypatch)
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("4 trials (2 cells x 2 seeds)")
    assert "bsd_region=True, bsd_pixel=False" in out and "bsd_region=False, bsd_pixel=True" in out
    assert "method=vanilla" not in out and "bsd_region=True, bsd_pixel=True" not in out


@pytest.mark.parametrize("rows", ["0,2", "5", "two", ","])
def test_rows_flag_names_the_rows_a_sweep_has(repo: Path, tmp_path: Path, monkeypatch, capsys, rows: str) -> None:
    monkeypatch.chdir(tmp_path)
    code = run_main([str(repo / "sweeps" / "bsd_components.py"), "--preset", "smoke", "--rows", rows, "--dry-run"],
                    monkeypatch)
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (f"error: --rows {rows!r} is invalid: the bsd_components sweep's "
                           "rows are numbers from 1 to 4, comma-separated")
