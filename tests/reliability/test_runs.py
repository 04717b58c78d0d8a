"""A run's folder under ``--out``: resume semantics (direct and Ray alike), atomic checkpoints, one run per
name, and the whole learning curve after a resume. In-process smoke runs of the direct path."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from cotrain.config import resolve
from cotrain.engine.checkpoint import CHECKPOINT_FILE, load_state
from cotrain.train import main

SMOKE = ["--preset", "smoke", "--direct", "--max-val-images", "1"]


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def _epochs(folder: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_resume_names_every_changed_key_and_keeps_the_saved_config(tmp_path, capsys):
    folder = tmp_path / "R"
    folder.mkdir()
    saved = resolve("smoke", overrides={"out": str(tmp_path), "name": "R", "max_val_images": 1}).to_dict()
    (folder / "config.yaml").write_text(yaml.safe_dump(saved))
    (folder / "metrics.jsonl").write_text("")
    before = (folder / "config.yaml").read_text()
    argv = [*SMOKE, "--out", str(tmp_path), "--name", "R", "--resume"]
    assert _exit_code([*argv, "--alpha", "5", "--epochs", "9", "--log-every", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "alpha=1.0 (now 5.0)" in err[0] and "epochs=2 (now 9)" in err[0], err
    assert "log_every" not in err[0].split("started with")[1].split(";")[0]  # logging may change
    assert (folder / "config.yaml").read_text() == before


def test_checkpoint_copy_killed_midway_keeps_the_previous_one_and_resume_continues(tmp_path, monkeypatch):
    """A copy of the epoch-2 checkpoint that dies half-way leaves the epoch-1 file whole, and no temp file;
    ``--resume`` then continues from epoch 1 and metrics.jsonl holds each epoch once."""
    import shutil as shutil_module
    calls = {"n": 0}
    real_copyfileobj, real_sendfile = shutil_module.copyfileobj, shutil_module._fastcopy_sendfile

    def dies_on_second_copy(real):
        def copy(src, dst, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] >= 2:
                dst.write(b"half a checkpoint")
                raise OSError("killed mid-copy")
            return real(src, dst, *args, **kwargs)
        return copy

    # Whichever way a copy goes (read/write loop or Linux sendfile), it fails half-way.
    monkeypatch.setattr(shutil_module, "copyfileobj", dies_on_second_copy(real_copyfileobj))
    monkeypatch.setattr(shutil_module, "_fastcopy_sendfile", dies_on_second_copy(real_sendfile))
    run = tmp_path / "d"
    with pytest.raises(OSError, match="killed mid-copy"):
        main([*SMOKE, "--out", str(tmp_path), "--name", "d"])
    checkpoint = run / "checkpoint"
    assert load_state(checkpoint / CHECKPOINT_FILE)["epoch"] == 1
    assert sorted(p.name for p in checkpoint.iterdir()) == [CHECKPOINT_FILE]

    monkeypatch.setattr(shutil_module, "copyfileobj", real_copyfileobj)
    monkeypatch.setattr(shutil_module, "_fastcopy_sendfile", real_sendfile)
    assert _exit_code([*SMOKE, "--out", str(tmp_path), "--name", "d", "--resume"]) == 0
    assert load_state(checkpoint / CHECKPOINT_FILE)["epoch"] == 2
    assert _epochs(run) == [1, 2]


def test_direct_run_refuses_an_existing_name_and_a_ray_run(tmp_path, capsys):
    (tmp_path / "old").mkdir()
    saved = resolve("smoke", overrides={"out": str(tmp_path), "max_val_images": 1}).to_dict()
    (tmp_path / "old" / "config.yaml").write_text(yaml.safe_dump(saved))
    assert _exit_code([*SMOKE, "--out", str(tmp_path), "--name", "old"]) == 2
    assert "already exists" in capsys.readouterr().err
    (tmp_path / "ray").mkdir()
    shutil.copy(tmp_path / "old" / "config.yaml", tmp_path / "ray" / "config.yaml")
    (tmp_path / "ray" / "tuner.pkl").write_bytes(b"")
    assert _exit_code([*SMOKE, "--out", str(tmp_path), "--name", "ray", "--resume"]) == 2
    assert "resume it without --direct" in capsys.readouterr().err


def test_second_run_with_the_same_name_exits_2_while_the_first_holds_it(tmp_path, capsys):
    from cotrain.cli import run_lock
    with run_lock(str(tmp_path), "busy"):  # the first run, still going
        assert _exit_code([*SMOKE, "--out", str(tmp_path), "--name", "busy"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "in use by another process" in err[0]
    assert not (tmp_path / "busy").exists()  # the lock of a run that never started leaves nothing


def test_learning_curve_keeps_the_epochs_before_a_resume(tmp_path):
    """Tune may start a resumed trial's result.json afresh: the first report after the resume carries
    the earlier epochs and the table script's history shows all of them."""
    from analysis.results import load_results
    from cotrain.engine.loop import fit

    cfg = resolve("smoke", overrides={"max_val_images": 1, "out": str(tmp_path), "name": "c"})
    saved = tmp_path / "after-epoch-1"

    def keep_epoch_1(metrics, folder):
        if metrics["epoch"] == 1:
            shutil.copytree(folder, saved)

    first = []
    fit(cfg, lambda m, f: (first.append(m), keep_epoch_1(m, f)), log=lambda _: None)
    resumed = []
    fit(cfg, lambda m, f: resumed.append(m), resume_from=str(saved), log=lambda _: None)
    assert [m["epoch"] for m in resumed] == [2]
    assert [h["epoch"] for h in resumed[0]["history"]] == [1]

    trial = tmp_path / "results" / "exp" / "trial_00000"
    trial.mkdir(parents=True)
    (trial / "params.json").write_text(json.dumps(cfg.to_dict()))
    (trial / "result.json").write_text("".join(json.dumps(m) + "\n" for m in resumed))  # as Tune left it
    history = load_results(tmp_path / "results").history
    assert list(history["epoch"]) == [1, 2]
    assert list(history["miou_cnn"]) == pytest.approx([m["miou_cnn"] for m in first])
