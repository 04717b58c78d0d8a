"""The extension claim: a method with its own option and a dataset, registered from one file outside the
package (``COTRAIN_PLUGINS``), are a config key, a CLI flag, a sweep cell and a training run by name.
A table declared outside the repository, swept through Ray and rendered: tests/test_docs_examples.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

PLUGIN = textwrap.dedent('''
    from dataclasses import dataclass, replace

    from cotrain.data import DATASETS, register_dataset
    from cotrain.methods.base import Method, NoOptions, register_method
    from cotrain.options import nonneg, option


    @dataclass(frozen=True)
    class ToyOptions(NoOptions):
        toy_weight: float = option(0.0, "toy: weight of the logit-matching term", nonneg)


    @register_method
    class Toy(Method):
        """Each student's logits pulled toward the other's (detached), by mean squared error."""

        name = "toy"
        term_names = ("toy_cnn", "toy_vit")
        Options = ToyOptions

        def terms(self, ctx):
            z_c, z_v = ctx.out_cnn.logits, ctx.out_vit.logits
            toy_c = self.options.toy_weight * (z_c - z_v.detach()).pow(2).mean()
            toy_v = self.options.toy_weight * (z_v - z_c.detach()).pow(2).mean()
            return toy_c, toy_v, {"toy_cnn": toy_c, "toy_vit": toy_v}


    register_dataset(replace(DATASETS["builtin"], name="toyset"))
''')


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "toy_plugin.py").write_text(PLUGIN)
    path = os.pathsep.join([str(tmp_path / "plugin"), str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "COTRAIN_PLUGINS": "toy_plugin"}  # RAY_TMPDIR: conftest's


def run(args: list[str], env: dict[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_plugin_option_is_a_flag_and_validated_like_a_built_in(plugin_env):
    shown = run(["-m", "cotrain.train", "--help"], plugin_env)
    assert shown.returncode == 0 and "--toy-weight" in shown.stdout and "toy: weight" in shown.stdout
    bad = run(["-m", "cotrain.train", "--preset", "smoke", "--method", "toy", "--toy-weight", "-1"], plugin_env)
    assert bad.returncode == 2 and "toy_weight=-1.0 is invalid: must be a finite number >= 0" in bad.stderr
    unknown = run(["-m", "cotrain.train", "--preset", "smoke", "--method", "toys"], plugin_env)
    assert unknown.returncode == 2 and "allowed: dml, ifvd, kdcl, offline_kd, ours, toy, vanilla" in unknown.stderr


def test_plugin_method_joins_the_methods_sweep(plugin_env):
    dry = run(["sweeps/methods.py", "--preset", "smoke", "--dataset", "toyset", "--methods", "vanilla,toy",
               "--set", "toy_weight=0.5", "--dry-run"], plugin_env)
    assert dry.returncode == 0, dry.stderr
    assert "method=toy" in dry.stdout and "4 trials (4 cells" in dry.stdout  # 2 pairs x (vanilla, toy)


def test_missing_plugin_module_is_named(plugin_env):
    broken = run(["-m", "cotrain.train", "--help"], {**plugin_env, "COTRAIN_PLUGINS": "no_such_plugin"})
    assert broken.returncode != 0 and "cannot import plugin module 'no_such_plugin'" in broken.stderr


@pytest.mark.slow
def test_plugin_method_and_dataset_train_by_name(plugin_env, tmp_path):
    # Through Ray's workers, a plugin method and its declared table run in tests/test_docs_examples.py (the
    # extending guide's example); here the plugin's dataset and method train by name in a real loop.
    out = tmp_path / "runs"
    done = run(["-m", "cotrain.train", "--preset", "smoke", "--epochs", "1", "--dataset", "toyset", "--method", "toy",
                "--toy-weight", "0.5", "--out", str(out), "--name", "t", "--direct"], plugin_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = yaml.safe_load((out / "t" / "config.yaml").read_text())
    assert (saved["dataset"], saved["method"], saved["toy_weight"]) == ("toyset", "toy", 0.5)
    last = json.loads((out / "t" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["toy_cnn"] > 0 and last["toy_vit"] > 0
