"""Issue #25: a save killed half-way left its checkpoint in a ``$TMPDIR/tmp*/`` folder that nothing removed.

Every checkpoint is now written under the run's own folder (``checkpoint.SCRATCH_DIR``; a Ray trial's inside
its Train folder) and what a killed save left there is removed when the run starts or resumes.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from reliability_helpers import REPO, env

from cotrain import launch
from cotrain.engine import loop
from cotrain.engine.checkpoint import SCRATCH_DIR, remove_stale_scratch, scratch_folder

# A direct smoke run whose first checkpoint save writes half a file, then SIGKILLs the process.
KILLED_AT_SAVE = textwrap.dedent('''
    import os, signal, sys
    import torch

    def dies_while_saving(obj, handle, *args, **kwargs):
        handle.write(b"half a checkpoint")
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    torch.save = dies_while_saving
    from cotrain.train import main
    sys.exit(main(sys.argv[1:]))
''')


def _checkpoints_in(tmpdir: Path) -> list[str]:
    """What a checkpoint save left in ``$TMPDIR`` (other libraries' own files there, e.g. ``pymp-*``, aside)."""
    return sorted(str(p.relative_to(tmpdir)) for p in tmpdir.rglob("*")
                  if "checkpoint" in p.name or (p.is_dir() and p.name.startswith("tmp")))


def _leftovers(folder: Path) -> list[str]:
    """Temporary files and folders under ``folder``: a scratch folder, ``*.tmp`` files, ``tmp*`` folders."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.name == SCRATCH_DIR or p.name.endswith(".tmp") or (p.is_dir() and p.name.startswith("tmp")))


@pytest.mark.slow  # two smoke runs in subprocesses
def test_a_save_killed_half_way_leaves_nothing_in_tmpdir_and_the_resume_cleans_the_run_folder(tmp_path):
    tmpdir, out = tmp_path / "tmpdir", tmp_path / "out"
    tmpdir.mkdir()
    (tmp_path / "killed_at_save.py").write_text(KILLED_AT_SAVE)
    argv = ["--preset", "smoke", "--direct", "--max-val-images", "1", "--out", str(out), "--name", "k"]
    killed = subprocess.run([sys.executable, str(tmp_path / "killed_at_save.py"), *argv], cwd=REPO,
                            capture_output=True, text=True, timeout=1800, env=env(TMPDIR=str(tmpdir)))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert _checkpoints_in(tmpdir) == []  # before: tmpXXXXXXXX/.checkpoint.pt.XXXXXXXX.tmp
    assert _leftovers(out / "k") and all(p.startswith(SCRATCH_DIR) for p in _leftovers(out / "k"))

    resumed = subprocess.run([sys.executable, "-m", "cotrain.train", *argv, "--resume"], cwd=REPO,
                             capture_output=True, text=True, timeout=1800, env=env(TMPDIR=str(tmpdir)))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _leftovers(out / "k") == [] and _checkpoints_in(tmpdir) == []
    assert (out / "k" / "checkpoint" / "checkpoint.pt").is_file()


def test_scratch_folder_lives_under_the_run_and_is_removed_after_use(tmp_path):
    root = tmp_path / "run" / SCRATCH_DIR
    with scratch_folder(root) as folder:
        assert Path(folder).parent == root and Path(folder).is_dir()
        (Path(folder) / "checkpoint.pt").write_bytes(b"x")
    assert list(root.iterdir()) == []
    (root / "epoch-killed").mkdir()
    (root / "epoch-killed" / ".checkpoint.pt.abc.tmp").write_bytes(b"half")
    remove_stale_scratch(root)
    assert not root.exists()


def test_fit_removes_what_a_killed_save_left_before_it_trains(tmp_path, monkeypatch):
    scratch = tmp_path / SCRATCH_DIR
    (scratch / "epoch-killed").mkdir(parents=True)
    (scratch / "epoch-killed" / ".checkpoint.pt.abc.tmp").write_bytes(b"half")

    class Built(Exception):
        pass

    def build_run(*args, **kwargs):
        assert not scratch.exists()
        raise Built
    monkeypatch.setattr(loop, "build_run", build_run)
    with pytest.raises(Built):
        loop.fit(None, lambda metrics, folder: None, scratch=scratch)


def test_ray_trials_write_checkpoints_inside_their_train_folder(tmp_path):
    local = launch.checkpoint_scratch(str(tmp_path), "exp", "abcde_00000")
    assert local == tmp_path / "exp" / launch.TRAIN_SUBDIR / "train-abcde_00000" / SCRATCH_DIR
    remote = launch.checkpoint_scratch("s3://bucket/runs", "exp", "abcde_00000")
    assert remote.name == "exp-train-abcde_00000" and remote.is_absolute()
