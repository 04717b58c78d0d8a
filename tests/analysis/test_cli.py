"""``python analysis/make_tables.py``: discovery, outputs, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from analysis.make_tables import main

REPO = Path(__file__).resolve().parents[2]


def md_rows(text: str) -> dict[str, list[str]]:
    """Markdown table rows keyed by their first cell."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| ")]
    return {row[0]: row[1:] for row in rows}


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "analysis/make_tables.py", *args], check=False, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_paper_alone_prints_nine_tables_from_the_repo_root(tmp_path: Path) -> None:
    result = run_script("--paper", "--results", str(tmp_path / "absent"))
    assert result.returncode == 0, result.stderr
    for number in range(1, 10):
        assert f"### Table {number} (paper)" in result.stdout
    assert "68.14 (+0.60)†" in result.stdout
    assert "printed +1.41, recomputed +0.60" in result.stdout


def test_missing_results_is_a_one_line_usage_error(tmp_path: Path) -> None:
    result = run_script("--results", str(tmp_path / "absent"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--results" in result.stderr and "absent" in result.stderr


@pytest.mark.parametrize("args", [["--format", "html"], ["--qualitative", "0"]])
def test_bad_values_exit_2(args: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--paper", *args])
    assert exit_info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_empty_results_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--results", str(tmp_path)])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("fmt,suffix", [("md", ".md"), ("latex", ".tex"), ("csv", ".csv")])
def test_writes_each_table_and_names_its_source(alpha_results: Path, capsys, fmt: str, suffix: str) -> None:
    out = alpha_results.parent / "out"
    with pytest.warns(UserWarning):
        assert main(["--results", str(alpha_results), "--format", fmt, "--out", str(out), "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert f"table7 <- {alpha_results / 'alpha_sensitivity'} (11 trials: 7 finished, 2 failed, 2 unfinished)" \
        in printed
    text = (out / f"table7{suffix}").read_text()
    assert "62.17 ± 1.04 (n=3) (+1.17 [+0.45, +1.88]*)" in text
    assert sorted(p.name for p in out.iterdir()) == [f"table7{suffix}"]


def test_default_out_is_results_tables_with_plots(alpha_results: Path, capsys) -> None:
    with pytest.warns(UserWarning):
        main(["--results", str(alpha_results), "--paper"])
    out = alpha_results / "tables"
    names = {p.name for p in out.iterdir()}
    for stem in ("table7_sensitivity_mobilenet_v2+mit_b1", "table7_learning_curves", "table7_distillation_direction"):
        assert {stem + ".png", stem + ".pdf"} <= names
        assert (out / f"{stem}.png").stat().st_size > 1000
    assert str(out / "table7_learning_curves.png") in capsys.readouterr().out


def test_methods_sweep_splits_by_dataset(methods_results: Path, capsys) -> None:
    main(["--results", str(methods_results), "--paper", "--no-plots"])
    printed = capsys.readouterr().out
    assert "table1 <- " in printed and "table_methods <- " in printed
    table1 = md_rows((methods_results / "tables" / "table1.md").read_text())
    assert table1["Method"] == ["ResNet-18", "MiT-B0", "Δ (ResNet-18+MiT-B0)",
                                "MobileNetV2 (paper)", "MiT-B1 (paper)", "Δ (MobileNetV2+MiT-B1) (paper)",
                                "ResNet-50 (paper)", "MiT-B2 (paper)", "Δ (ResNet-50+MiT-B2) (paper)"]
    dml = dict(zip(table1["Method"], table1["DML"]))
    assert (dml["ResNet-18"], dml["MiT-B0"], dml["Δ (ResNet-18+MiT-B0)"]) == ("66.50 (-0.50)", "78.25 (+0.25)", "-0.25")
    assert dml["MobileNetV2 (paper)"] == "67.43 (-0.11)"
    assert dict(zip(table1["Method"], table1["KDCL"]))["ResNet-18"] == "—"
    text = (methods_results / "tables" / "table_methods.md").read_text()
    assert "### Comparison with the SoTA KD methods on builtin; experiment test_sweep" in text
    assert "(paper)" not in text, "the paper has no numbers for the builtin dataset"
    assert md_rows(text)["Ours"] == ["41.00 (+1.00)", "44.00 (-1.00)", "+0.00"]


def test_trials_without_a_declared_table_are_named_and_nothing_is_written(tmp_path: Path, capsys) -> None:
    from ray_layout import config, write_trial
    cfg = {k: v for k, v in config("7", "ours", 0).items() if k != "layout"}  # e.g. a sweep from before declarations
    write_trial(tmp_path / "results" / "old", 0, {**cfg, "table": "search"}, (50.0, 60.0))
    assert main(["--results", str(tmp_path / "results"), "--no-plots"]) == 1
    err = capsys.readouterr().err
    assert "1 trial(s) with table='search' skipped: no declared table in params.json" in err
    assert "no trial under" in err and not (tmp_path / "results" / "tables").exists()
