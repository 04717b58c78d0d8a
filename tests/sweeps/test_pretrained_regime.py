"""``--pretrain-epochs``: Vanilla first, then every cell starts from the Vanilla students of its pair and seed."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_main
from tests.sweeps.test_sweeps import fake_run_experiment, table_rows, trial_configs


def fake_with_checkpoints(space: dict, *, name: str, storage: str, **rest: object):
    """``fake_run_experiment`` plus the checkpoint folder Ray Train would leave for each trial."""
    results = fake_run_experiment(space, name=name, storage=storage, **rest)
    for result in results:
        folder = Path(storage, name, "_train", f"train-{result.metrics['trial_id']}", "checkpoint_000000")
        folder.mkdir(parents=True)
        (folder / "checkpoint.pt").write_bytes(b"")
    return results


@pytest.fixture
def without_ray_but_checkpoints(monkeypatch):
    import contextlib

    from cotrain import launch
    monkeypatch.setattr(launch, "ray_session", lambda **_: contextlib.nullcontext())
    monkeypatch.setattr(launch, "run_experiment", fake_with_checkpoints)


def test_every_cell_starts_from_the_vanilla_checkpoint_of_its_seed(tmp_path, without_ray_but_checkpoints,
                                                                   monkeypatch, capsys):
    from analysis.make_tables import main as make_tables

    code = run_main(["sweeps/components.py", "--preset", "smoke", "--storage", str(tmp_path), "--name", "ft",
                     "--seeds", "2", "--epochs", "3", "--pretrain-epochs", "5", "--quiet"], monkeypatch)
    assert code == 0, capsys.readouterr()
    first, second = trial_configs(tmp_path / "ft-pretrain"), trial_configs(tmp_path / "ft")
    assert sorted((c["method"], c["seed"], c["epochs"]) for c in first) == [("vanilla", 0, 5), ("vanilla", 1, 5)]
    assert len(second) == 8 and {c["epochs"] for c in second} == {3}  # 4 cells (Vanilla too) x 2 seeds
    for config in second:
        start = Path(config["init_from"])
        origin = next(c for c in first if c["seed"] == config["seed"])
        assert start.parent.parent.parent == tmp_path / "ft-pretrain"  # <pretrain>/_train/train-<id>/checkpoint_*
        assert (start / "checkpoint.pt").is_file()
        assert config["seed"] == origin["seed"] and first.count(origin) == 1
    assert len({c["init_from"] for c in second}) == 2  # one start per seed, shared by its cells
    capsys.readouterr()
    assert make_tables(["--results", str(tmp_path), "--no-plots"]) == 0
    shown = capsys.readouterr().out
    assert "from Vanilla students of 5 epochs" in shown and "the Vanilla pre-training (5 epochs)" in shown
    # Tables print in experiment order: ft (the regime's table), then ft-pretrain (its starting point).
    main_rows = table_rows(shown.split("pre-training (5 epochs)")[0], "from Vanilla students of 5 epochs")
    assert len(main_rows) == 4 and not any("—" in row for row in main_rows)


def test_resume_needs_the_first_stage_and_a_new_run_refuses_it(tmp_path, without_ray_but_checkpoints,
                                                               monkeypatch, capsys):
    argv = ["sweeps/components.py", "--preset", "smoke", "--storage", str(tmp_path), "--name", "ft",
            "--pretrain-epochs", "1", "--quiet"]
    assert run_main([*argv, "--resume"], monkeypatch) == 2
    assert "no experiment 'ft-pretrain'" in capsys.readouterr().err
    (tmp_path / "ft-pretrain").mkdir()
    (tmp_path / "ft-pretrain" / "tuner.pkl").write_bytes(b"")
    assert run_main(argv, monkeypatch) == 2
    assert "already exists" in capsys.readouterr().err


def test_bad_pretrain_epochs_exit_2_in_one_line(tmp_path, monkeypatch, capsys):
    code = run_main(["sweeps/components.py", "--preset", "smoke", "--storage", str(tmp_path),
                     "--pretrain-epochs", "0", "--dry-run"], monkeypatch)
    assert code == 2 and capsys.readouterr().err.strip() == "error: --pretrain-epochs 0 is invalid: must be >= 1"


def test_an_interrupted_stage_says_to_resume_the_commands_name(tmp_path, without_ray_but_checkpoints,
                                                              monkeypatch, capsys):
    """Ctrl-C during ``<name>-pretrain`` must say ``--resume --name <name>``: resuming the stage's own name
    would start a new regime around it."""
    from cotrain import launch

    def interrupted(space, *, name, command_name=None, **rest):
        raise launch.RunInterrupted(command_name or name)

    monkeypatch.setattr(launch, "run_experiment", interrupted)
    code = run_main(["sweeps/components.py", "--preset", "smoke", "--storage", str(tmp_path), "--name", "ft",
                     "--pretrain-epochs", "1", "--quiet"], monkeypatch)
    err = capsys.readouterr().err
    assert code == 130 and "--resume --name ft\n" in err + "\n" and "ft-pretrain" not in err, err
