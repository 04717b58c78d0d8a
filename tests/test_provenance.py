"""Provenance (issue #23): every run records where its numbers came from, and make_tables warns when one
table mixes code commits, data or CPU kernels."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from analysis.make_tables import main as make_tables
from cotrain import provenance
from cotrain.config import resolve
from tests.analysis.ray_layout import config, write_trial
from tests.conftest import REPO


def test_collect_names_code_packages_kernels_and_data():
    record = provenance.collect(resolve("smoke"))
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        assert record["git_commit"] == head.stdout.strip() and isinstance(record["git_dirty"], bool)
    assert set(record["versions"]) == {"torch", "torchvision", "timm", "segmentation_models_pytorch", "ray",
                                       "optuna"}
    assert record["versions"]["torch"] == torch.__version__.split("+")[0]
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["torch_threads"] == torch.get_num_threads() and record["cpu_model"]
    assert record["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert record["data_files"] > 0 and len(record["data_sha256"]) == 64 and record["plugins"] == []
    json.dumps(record)  # JSON as it is


def test_data_fingerprint_follows_the_file_list_not_the_listing_order(tmp_path):
    for name in ("b/2.png", "a/1.png", "c.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    first = provenance.tree_fingerprint.__wrapped__(str(tmp_path))
    assert first[0] == 3
    (tmp_path / "a" / "1.png").rename(tmp_path / "a" / "0.png")
    renamed = provenance.tree_fingerprint.__wrapped__(str(tmp_path))
    assert renamed[0] == 3 and renamed[1] != first[1]
    (tmp_path / "a" / "0.png").rename(tmp_path / "a" / "1.png")
    assert provenance.tree_fingerprint.__wrapped__(str(tmp_path)) == first


def test_a_folder_outside_git_has_no_commit(tmp_path):
    assert provenance.git_state.__wrapped__(str(tmp_path)) == (None, None)


def test_only_the_first_report_of_a_start_carries_it():
    sent: list[dict] = []
    report = provenance.first_report_carries(lambda metrics, folder: sent.append(metrics), resolve("smoke"))
    report({"epoch": 1}, None)
    report({"epoch": 2}, None)
    assert provenance.parse(sent[0][provenance.KEY])["cpu_capability"] and provenance.KEY not in sent[1]


def test_direct_run_writes_provenance_json(tmp_path, capsys):
    from cotrain.train import main
    assert main(["--preset", "smoke", "--epochs", "1", "--max-train-steps", "1", "--cpu-threads", "1",
                 "--out", str(tmp_path), "--name", "d", "--direct"]) == 0
    starts = json.loads((tmp_path / "d" / "provenance.json").read_text())
    assert len(starts) == 1 and starts[0]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert starts[0]["torch_threads"] == 1
    lines = (tmp_path / "d" / "metrics.jsonl").read_text().splitlines()
    assert provenance.KEY not in json.loads(lines[0])  # recorded once, in provenance.json


def with_provenance(trial_dir: Path, **values) -> None:
    """Put a provenance into the trial's first report, as the training worker does."""
    lines = (trial_dir / "result.json").read_text().splitlines()
    first = json.loads(lines[0])
    first[provenance.KEY] = json.dumps({"git_commit": "a" * 40, "git_dirty": False, "cpu_capability": "AVX512",
                                        "data_files": 722, "data_sha256": "f" * 64, "device": "cpu", **values})
    (trial_dir / "result.json").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")


@pytest.mark.parametrize("differs,shown", [
    ({"git_commit": "b" * 40}, "commit aaaaaaaaaa (Vanilla) vs bbbbbbbbbb (0.1)"),
    ({"cpu_capability": "AVX2"}, "cpu capability AVX512 (Vanilla) vs AVX2 (0.1)"),
    ({"data_sha256": "0" * 64}, "data 722 files ffffffffffff (Vanilla) vs 722 files 000000000000 (0.1)"),
])
def test_make_tables_warns_once_per_table_naming_the_rows(tmp_path, capsys, differs, shown):
    experiment = tmp_path / "results" / "alpha"
    with_provenance(write_trial(experiment, 0, config("7", "vanilla", 0), (60.0, 70.0)))
    with_provenance(write_trial(experiment, 1, config("7", "ours", 0, alpha=0.1), (61.0, 70.2)), **differs)
    assert make_tables(["--results", str(tmp_path / "results"), "--no-plots"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "mixes provenances" in line]
    assert warnings == [f"make_tables.py: warning: table7 mixes provenances: {shown}"]


def test_make_tables_is_quiet_when_one_provenance_made_the_table(tmp_path, capsys):
    experiment = tmp_path / "results" / "alpha"
    for index, cfg in enumerate([config("7", "vanilla", 0), config("7", "ours", 0, alpha=0.1)]):
        with_provenance(write_trial(experiment, index, cfg, (60.0, 70.0)))
    assert make_tables(["--results", str(tmp_path / "results"), "--no-plots"]) == 0
    assert "mixes provenances" not in capsys.readouterr().err
