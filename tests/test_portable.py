"""``portable`` (issue #23): the CPU kernel level and the threads pinned, for the driver and every Ray worker."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from cotrain import launch, portable
from cotrain.config import resolve
from cotrain.sweep import SweepSpec, base_config, build_parser
from cotrain.tables import TableSpec
from cotrain.train import build_parser as train_parser

# Kernels of the three libraries a step uses: ATen (softmax, layer norm), oneDNN (convolution), MKL (GEMM).
KERNELS = textwrap.dedent('''
    import hashlib, json, sys
    import torch
    from cotrain import portable
    pinned = portable.pin_this_process() if sys.argv[1] == "pin" else None
    torch.manual_seed(0)
    x, w = torch.randn(2, 16, 33, 33), torch.randn(32, 16, 3, 3)
    a, b = torch.randn(257, 1000), torch.randn(1000, 333)
    outs = [torch.softmax(a, 1), torch.nn.functional.layer_norm(a, (1000,)), torch.nn.functional.conv2d(x, w), a @ b]
    print(json.dumps({"pinned": pinned, "capability": torch.backends.cpu.get_cpu_capability(),
                      "hashes": [hashlib.sha256(o.numpy().tobytes()).hexdigest() for o in outs]}))
''')


def kernels(mode: str, env: dict | None = None) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in portable.PORTABLE_ENV}
    clean["OMP_NUM_THREADS"] = "1"  # the same threads in every process (and no spinning on a busy machine)
    done = subprocess.run([sys.executable, "-c", KERNELS, mode], env={**clean, **(env or {})}, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_pinned_processes_compute_the_same_bits_and_differ_from_the_machines_own_kernels():
    plain, pinned, by_env = kernels("plain"), kernels("pin"), kernels("plain", portable.PORTABLE_ENV)
    assert pinned["pinned"] is True and pinned["capability"] == by_env["capability"] == "AVX2"
    assert pinned["hashes"] == by_env["hashes"]  # pinned before the first kernel == started with the variables
    if plain["capability"] == "AVX2":
        pytest.skip("this machine's own kernels are AVX2 already")
    assert pinned["hashes"] != plain["hashes"]


def test_a_process_that_computed_already_cannot_pin_and_keeps_its_environment(monkeypatch):
    import torch
    for key in portable.PORTABLE_ENV:
        monkeypatch.delenv(key, raising=False)
    torch.ones(3).sum()  # torch has chosen its kernels
    if torch.backends.cpu.get_cpu_capability() == portable.PINNED_CAPABILITY:
        pytest.skip("this process computes with AVX2 kernels already")
    assert portable.pin_this_process() is False
    assert not any(key in os.environ for key in portable.PORTABLE_ENV)


def test_portable_is_a_config_key_a_train_flag_and_a_sweep_flag(tmp_path):
    assert resolve("smoke").portable is False and resolve("smoke", overrides={"portable": True}).portable
    assert train_parser().parse_args(["--portable", "--cpu-threads", "2"]).portable is True
    spec = SweepSpec(script="t", table=TableSpec("t", "t"), cells=[{}])
    for flags in (["--portable"], ["--set", "portable=true"]):
        args = build_parser("t").parse_args([*flags, "--preset", "smoke", "--storage", str(tmp_path)])
        assert base_config(args, spec, "n").portable is True


def test_threads_are_fixed_when_portable_unless_given():
    assert portable.threads(None, False, 3) == 3 and portable.threads(None, True, 3) == portable.PORTABLE_THREADS
    assert portable.threads(2, True, 3) == 2 and portable.threads(None, False, None) is None


def test_ray_workers_start_with_the_drivers_pinning(monkeypatch):
    for key in portable.PORTABLE_ENV:
        monkeypatch.setenv(key, "")  # recorded, so that the pin below is undone after the test
        monkeypatch.delenv(key)
    assert launch.worker_runtime_env() is None
    portable.pin_driver()
    assert launch.worker_runtime_env() == {"env_vars": portable.PORTABLE_ENV}


def test_a_run_saved_before_these_keys_existed_resumes(tmp_path):
    import yaml

    from cotrain.cli import resumed_config
    from cotrain.config import config_from_args
    saved = {k: v for k, v in resolve("smoke").to_dict().items() if k not in ("portable", "cpu_threads", "plugins")}
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.yaml").write_text(yaml.safe_dump({**saved, "out": str(tmp_path), "name": "old"}))
    args = train_parser().parse_args(["--resume", "--name", "old", "--out", str(tmp_path)])
    assert resumed_config(args, config_from_args(args)).portable is False
