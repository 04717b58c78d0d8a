"""The examples the documentation shows run as written (issue #25): README's "Adding a table" script, and
docs/extending.md's plugin method (CWD), its options and its declared table, taken from the pages themselves."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.results import load_results
from tests.conftest import REPO, run_main

PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def readme_table_script() -> str:
    """The python block that follows README's "**Adding a table**" paragraph."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return PYTHON_BLOCK.search(text, text.index("**Adding a table**")).group(1)


def extending_files() -> dict[str, str]:
    """docs/extending.md's python blocks that name their file on their first line (``# cwd_plugin.py``)."""
    text = (REPO / "docs" / "extending.md").read_text(encoding="utf-8")
    blocks = [block for block in PYTHON_BLOCK.findall(text) if re.match(r"# \w+\.py\n", block)]
    return {block.split("\n", 1)[0][2:]: block for block in blocks}


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """docs/extending.md's files written to ``tmp_path``, importable, the plugin named in COTRAIN_PLUGINS."""
    for name, code in extending_files().items():
        (tmp_path / name).write_text(code)
    path = os.pathsep.join([str(tmp_path), str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "COTRAIN_PLUGINS": "cwd_plugin", "PYTHONWARNINGS": "ignore"}


def run(args: list[str], env: dict[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


def test_readme_adding_a_table_script_runs(tmp_path: Path, monkeypatch, capsys) -> None:
    script = tmp_path / "temperature.py"
    script.write_text(readme_table_script())
    monkeypatch.chdir(REPO)
    assert run_main([str(script), "--preset", "smoke", "--dry-run"], monkeypatch) == 0
    out = capsys.readouterr().out
    assert "4 trials (4 cells x 1 seeds), preset smoke" in out
    assert "method=ours, temperature=4.0" in out


def test_extending_page_names_both_files() -> None:
    assert sorted(extending_files()) == ["cwd_plugin.py", "cwd_table.py"]


def test_extending_example_is_a_method_flags_and_a_sweep(plugin_env, tmp_path: Path) -> None:
    shown = run(["-m", "cotrain.train", "--help"], plugin_env)
    assert shown.returncode == 0, shown.stderr
    assert all(flag in shown.stdout for flag in ("--cwd-weight", "--cwd-tau", "--cwd-direction"))
    bad = run(["-m", "cotrain.train", "--preset", "smoke", "--method", "cwd", "--cwd-tau", "0"], plugin_env)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: cwd_tau=0.0 is invalid: must be a finite number > 0"
    dry = run([str(tmp_path / "cwd_table.py"), "--preset", "smoke", "--dry-run"], plugin_env, cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "3 trials (3 cells x 1 seeds)" in dry.stdout and "method=cwd, cwd_weight=2.0" in dry.stdout


def test_extending_example_losses_are_ce_plus_the_kd_parts(plugin_env) -> None:
    """The loop adds CE to what ``terms`` returns; CWD selects no teacher, so no direction shares."""
    check = run(["-c", "\n".join([
        "import torch",
        "from cotrain.pair import build_pair",
        "torch.manual_seed(0)",
        "pair = build_pair('mobilenet_v2', 'mit_b0', 3, method='cwd', cwd_weight=0.5, cwd_direction='vit_to_cnn')",
        "images, target = torch.randn(2, 3, 64, 64), torch.randint(0, 3, (2, 64, 64))",
        "out = pair.losses(images, target)",
        "assert abs(float(out['cnn']) - float(out['ce_cnn'] + out['cwd_cnn'])) < 1e-5, out",
        "assert float(out['cwd_cnn']) > 0 and float(out['cwd_vit']) == 0 and float(out['vit']) == float(out['ce_vit'])",
        "assert not any(k.startswith('cnn_teaches') for k in out), sorted(out)",
        "print('ok')"])], plugin_env)
    assert check.returncode == 0 and check.stdout.strip() == "ok", check.stderr[-3000:]


@pytest.mark.slow
def test_extending_example_sweeps_through_ray_and_renders_its_table(plugin_env, tmp_path: Path) -> None:
    """The page's commands, end to end at smoke size: the sweep (its first two rows: Vanilla and CWD at 0.5, two
    trials through Ray), then make_tables, which shows the row not run as missing."""
    results = tmp_path / "results"
    done = run([str(tmp_path / "cwd_table.py"), "--preset", "smoke", "--rows", "1,2", "--storage", str(results),
                "--name", "cwd", "--quiet"], plugin_env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list(results.glob("cwd/*/result.json"))) == 2
    for result in results.glob("cwd/*/result.json"):
        last = json.loads(result.read_text().splitlines()[-1])
        method = json.loads((result.parent / "params.json").read_text())["cell"]["method"]
        assert (last["cwd_cnn"] > 0) == (method == "cwd") if "cwd_cnn" in last else method == "vanilla"
    assert {"cwd_cnn", "cwd_vit"} <= set(load_results(results).history.columns)
    tables = run(["analysis/make_tables.py", "--results", str(results)], plugin_env)
    assert tables.returncode == 0, tables.stderr
    text = (results / "tables" / "table_cwd.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert list(rows) == ["CWD weight", "Vanilla", "0.5", "2"]
    assert not any("—" in rows[label] or "invalid" in rows[label] for label in ("Vanilla", "0.5")), text
    assert "—" in rows["2"], text  # the row not run
    figures = sorted(p.name for p in (results / "tables").glob("*.png"))
    assert "table_cwd_learning_curves.png" in figures
    assert not any("distillation_direction" in name for name in figures)  # CWD selects no teacher
