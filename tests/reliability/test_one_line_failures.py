"""Issue #25: failures that ended in a traceback (or minutes of silence) end in one line and exit code 2.

Ray's node start-up timing out, an MLflow tracking server that does not answer, an ``s3://`` storage that
cannot be reached, a full disk under ``--out``, a plugin module that raises on import. Each runs the real
command's ``__main__`` in this process (``tests.conftest.run_main``), with Ray's start replaced where the case
must fail before Ray starts; the plugin case needs a fresh interpreter and runs as a subprocess.
"""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import time

import pytest
from reliability_helpers import REPO, env

from tests.conftest import run_main

TRAIN = ["-m", "cotrain.train", "--preset", "smoke"]
ALPHA = ["sweeps/alpha_sensitivity.py", "--preset", "smoke"]
TIMED_OUT = ("The current node timed out during startup. This could happen because some of the raylet failed "
             "to startup or the GCS has become overloaded.")


def _run(argv: list[str], monkeypatch, capsys) -> tuple[int, list[str], str]:
    """``python ARGV`` here: exit code, the non-empty stderr lines, all of stderr."""
    monkeypatch.chdir(REPO)
    capsys.readouterr()
    code = run_main(argv, monkeypatch)
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()], err


def _no_ray(monkeypatch) -> None:
    """Fail loudly should the command start Ray (it must fail before)."""
    import ray

    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started before the failure was found")
    monkeypatch.setattr(ray, "init", refuse)


# --- Ray's node start-up times out under load --------------------------------------------------------------

def test_node_startup_timeout_is_retried_once_with_a_longer_wait(monkeypatch):
    import ray

    from cotrain import launch
    calls = []
    real_get_node = ray._private.services.get_node

    def init(**kwargs):
        calls.append(ray._private.services.get_node is not real_get_node)  # the patient wait is in place
        if len(calls) == 1:
            raise Exception(TIMED_OUT)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    with launch.ray_session(quiet=True):
        pass
    assert calls == [False, True]
    assert ray._private.services.get_node is real_get_node  # put back


def test_node_startup_timing_out_twice_is_one_line(tmp_path, monkeypatch, capsys):
    import ray

    def init(**kwargs):
        raise Exception(TIMED_OUT)
    monkeypatch.setattr(ray, "init", init)
    code, lines, err = _run([*TRAIN, "--out", str(tmp_path / "out"), "--name", "r"], monkeypatch, capsys)
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: Ray's node did not start on this machine, twice (waited 30 s, then 120 s)")
    assert "run the same command again" in lines[0]
    assert not (tmp_path / "out" / "r").exists()


# --- --mlflow URI with nothing listening ------------------------------------------------------------------

def test_mlflow_server_not_answering_fails_before_any_trial(tmp_path, monkeypatch, capsys):
    pytest.importorskip("mlflow")
    _no_ray(monkeypatch)
    start = time.monotonic()
    code, lines, err = _run([*TRAIN, "--out", str(tmp_path / "out"), "--mlflow", "http://127.0.0.1:9"],
                            monkeypatch, capsys)
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: --mlflow http://127.0.0.1:9: no MLflow tracking server answers there")
    assert time.monotonic() - start < 60
    assert not any((tmp_path / "out").iterdir()) if (tmp_path / "out").is_dir() else True


# --- --storage s3://nonexistent-bucket/x (no network here: pyarrow's answers are simulated) -----------------

def test_unreachable_s3_storage_fails_fast_in_one_line(tmp_path, monkeypatch, capsys):
    from cotrain.launch import storage as launch_storage
    _no_ray(monkeypatch)

    def from_uri(uri):  # what pyarrow.fs.FileSystem.from_uri raised here, without network, after 9 s
        raise OSError("When resolving region for bucket 'nonexistent-bucket': AWS Error NETWORK_CONNECTION during "
                      "HeadBucket operation: curlCode: 6, Could not resolve hostname")
    monkeypatch.setattr(launch_storage, "storage_filesystem", from_uri)
    code, lines, err = _run([*ALPHA, "--storage", "s3://nonexistent-bucket/x"], monkeypatch, capsys)
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: storage s3://nonexistent-bucket/x is not usable (When resolving region for "
                               "bucket 'nonexistent-bucket'")
    assert lines[0].endswith("check the bucket name, credentials and network, or pass a local --storage/--out folder")


def test_s3_storage_that_never_answers_is_given_up_in_seconds(monkeypatch, capsys):
    from cotrain import cli
    from cotrain.launch import storage as launch_storage
    _no_ray(monkeypatch)
    monkeypatch.setattr(launch_storage, "storage_filesystem", lambda uri: time.sleep(5))
    monkeypatch.setattr(cli, "STORAGE_PROBE_S", 0.5)
    code, lines, err = _run([*TRAIN, "--out", "s3://nonexistent-bucket/x"], monkeypatch, capsys)
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("error: storage s3://nonexistent-bucket/x did not answer within 0.5 s;")


# --- a full disk under --out, and the resume afterwards ------------------------------------------------------

DIRECT = [*TRAIN, "--direct", "--max-val-images", "1"]


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_before_the_run_starts_names_the_file_and_leaves_no_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(os, "fsync", _disk_full)  # the first write to reach the disk: config.yaml
    code, lines, err = _run([*DIRECT, "--out", str(tmp_path), "--name", "d"], monkeypatch, capsys)
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0] == (f"error: no space left on the device writing {tmp_path}/d/config.yaml (No space left on "
                        "device); free space there or pass another --out/--storage, then run the same command again")
    assert not (tmp_path / "d").exists()


@pytest.mark.slow  # two smoke runs
def test_full_disk_mid_run_names_the_file_and_the_run_resumes(tmp_path, monkeypatch, capsys):
    import shutil as shutil_module

    from cotrain.engine.checkpoint import CHECKPOINT_FILE, load_state
    calls = {"n": 0}
    real_copy, real_sendfile = shutil_module.copyfileobj, shutil_module._fastcopy_sendfile

    def full_on_second_copy(real):
        def copy(src, dst, *args, **kwargs):
            calls["n"] += 1
            if calls["n"] >= 2:  # the epoch-2 checkpoint's copy into the run folder
                _disk_full()
            return real(src, dst, *args, **kwargs)
        return copy

    monkeypatch.setattr(shutil_module, "copyfileobj", full_on_second_copy(real_copy))
    monkeypatch.setattr(shutil_module, "_fastcopy_sendfile", full_on_second_copy(real_sendfile))
    argv = [*DIRECT, "--out", str(tmp_path), "--name", "d"]
    code, lines, err = _run(argv, monkeypatch, capsys)
    checkpoint = tmp_path / "d" / "checkpoint" / CHECKPOINT_FILE
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0] == (f"error: no space left on the device writing {checkpoint} (No space left on device); free "
                        "space there or pass another --out/--storage, then resume with the same command plus "
                        "--resume --name d")
    assert load_state(checkpoint)["epoch"] == 1

    monkeypatch.setattr(shutil_module, "copyfileobj", real_copy)
    monkeypatch.setattr(shutil_module, "_fastcopy_sendfile", real_sendfile)
    code, _, err = _run([*argv, "--resume"], monkeypatch, capsys)
    assert code == 0, err
    assert load_state(checkpoint)["epoch"] == 2
    assert not [p for p in (tmp_path / "d").rglob("*") if p.name.endswith(".tmp")]


# --- a plugin module that raises while it is imported --------------------------------------------------------

@pytest.mark.parametrize("argv", [["-m", "cotrain.train", "--help"], ["sweeps/alpha_sensitivity.py", "--dry-run"]],
                         ids=["train", "sweep"])
def test_plugin_raising_on_import_is_one_line_naming_it(tmp_path, argv):
    (tmp_path / "bad_plugin.py").write_text("import math\n\nraise RuntimeError('boom in plugin')\n")
    plugin_env = env(COTRAIN_PLUGINS="bad_plugin")
    plugin_env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), plugin_env["PYTHONPATH"]])
    done = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=plugin_env)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0] == (f"error: COTRAIN_PLUGINS: plugin module 'bad_plugin' raised RuntimeError while it was "
                        f"imported: boom in plugin ({tmp_path / 'bad_plugin.py'}:3); fix it or remove it from "
                        "COTRAIN_PLUGINS")
