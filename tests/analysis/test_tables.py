"""Regenerated tables: statistics, cell text, paper flags, declared layouts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ray_layout import ALPHA_01, VANILLA, declared_layout
from scipy import stats

from analysis.formatting import format_student, to_text
from analysis.paper import paper_spec, paper_table, paper_tables, read_paper_csv
from analysis.results import load_results
from analysis.stats import summarise, t_interval
from analysis.tables import assign_rows, render_table
from cotrain.tables import TableSpec


def declared(table: str) -> TableSpec:
    """The table a sweep script declares (as a trial's params.json carries it)."""
    return TableSpec.from_dict(declared_layout(table))


@pytest.fixture
def table7(alpha_results: Path):
    with pytest.warns(UserWarning):
        trials = load_results(alpha_results).trials
    return render_table("table7", declared("7"), "Table 7", trials, None)


def _stat(table, row: str, student: str) -> dict:
    frame = table.stats
    return frame[(frame["row"] == row) & (frame["student"] == student)].iloc[0].to_dict()


def test_gain_and_paired_interval_match_an_independent_computation(table7) -> None:
    gains = np.subtract([a for a, _ in ALPHA_01], [a for a, _ in VANILLA])
    low, high = stats.t.interval(0.95, len(gains) - 1, loc=gains.mean(), scale=stats.sem(gains))
    cnn = _stat(table7, "0.1", "cnn")
    assert (cnn["n"], cnn["mean"], cnn["std"]) == (3, pytest.approx(62.1666667), pytest.approx(1.0408330))
    assert cnn["gain"] == pytest.approx(gains.mean())
    assert (cnn["ci_low"], cnn["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    deltas = gains + np.subtract([b for _, b in ALPHA_01], [b for _, b in VANILLA])
    delta = _stat(table7, "0.1", "delta")
    assert delta["gain"] == pytest.approx(deltas.mean())
    assert delta["ci_low"] == pytest.approx(stats.t.interval(0.95, 2, deltas.mean(), stats.sem(deltas))[0])


def test_cells_of_table7(table7) -> None:
    frame = table7.frame.set_index("α")
    assert list(frame.index) == ["Vanilla", "0.1", "0.5", "1.0", "2.0", "5.0"]
    assert frame.loc["Vanilla", "MobileNetV2"] == "61.00 ± 1.00 (n=3)"
    assert frame.loc["Vanilla", "Δ"] == "0.00"
    assert frame.loc["0.1", "MobileNetV2"] == "62.17 ± 1.04 (n=3) (+1.17 [+0.45, +1.88]*)"
    assert frame.loc["0.1", "MiT-B1"] == "70.53 ± 0.67 (n=3) (+0.03 [-0.91, +0.97])"
    assert frame.loc["0.1", "Δ"] == "+1.20 [+0.95, +1.45]*"
    assert frame.loc["1.0", "MobileNetV2"] == "62.00 (+1.00) (1 failed)"
    assert frame.loc["1.0", "Δ"] == "+1.50"
    assert frame.loc["0.5"].tolist() == ["failed"] * 3
    assert frame.loc["2.0"].tolist() == ["—"] * 3
    assert frame.loc["5.0"].tolist() == ["—"] * 3, "a truncated last report leaves the trial unfinished"
    assert not any("(paper)" in c for c in frame.columns), "paper columns only on request"


def test_paper_beside_measured_with_flag(alpha_results: Path) -> None:
    with pytest.warns(UserWarning):
        trials = load_results(alpha_results).trials
    table = render_table("table7", declared("7"), "Table 7", trials, paper_table("7"))
    frame = table.frame.set_index("α")
    assert frame.loc["0.1", "MobileNetV2 (paper)"] == "68.14 (+0.60)†"
    assert frame.loc["0.1", "Δ (paper)"] == "+1.06"
    assert frame.loc["0.1", "MobileNetV2"].startswith("62.17")
    assert any("α = 0.1, MobileNetV2" in n and "printed +1.41, recomputed +0.60" in n for n in table.notes)


def test_paper_flags_are_exactly_the_inconsistent_subscripts() -> None:
    flagged = set()
    for number, paper in paper_tables().items():
        table = render_table(f"table{number}", paper_spec(paper), "caption", None, paper)
        flagged |= {(number, n.split(": printed")[0].split(", ", 1)[1]) for n in table.notes if n.startswith("† Table")}
    assert flagged == {
        ("1", "Offline KD, ResNet-50 (ResNet-50+MiT-B2)"),
        ("2", "Offline KD, MobileNetV2 (MobileNetV2+MiT-B1)"), ("2", "KDCL, MobileNetV2 (MobileNetV2+MiT-B1)"),
        ("2", "IFVD, Δ (ResNet-50+MiT-B2)"), ("2", "Ours, MiT-B1 (MobileNetV2+MiT-B1)"),
        ("3", "Offline KD, MiT-B2 (ResNet-50+MiT-B2)"), ("3", "Offline KD, Δ (ResNet-50+MiT-B2)"),
        ("3", "DML, Δ (ResNet-50+MiT-B2)"), ("4", "L_s + L_HFD + L_BSD, MiT-B1 (MobileNetV2+MiT-B1)"),
        ("7", "α = 0.1, MobileNetV2 (MobileNetV2+MiT-B1)"), ("7", "α = 1.0, MiT-B1 (MobileNetV2+MiT-B1)"),
    }


def test_paper_transcription_is_complete() -> None:
    frame = read_paper_csv()
    counts = frame[frame["student"] != "delta"].groupby("table").size().to_dict()
    # rows × pairs × 2 students (Tables 7-9 add the Table 1 Vanilla they refer to)
    assert counts == {"1": 24, "2": 24, "3": 24, "4": 8, "5": 8, "6": 8, "7": 12, "8": 10, "9": 12}
    assert frame["miou"].dropna().between(60, 90).all()


def test_row_keys_of_each_declared_table() -> None:
    assert declared("4").row_key({"method": "vanilla", "hfd": True}) == "vanilla"
    assert declared("4").row_key({"method": "ours", "hfd": True, "bsd_region": False, "bsd_pixel": False}) == \
        "hfd=1 bsd_region=0 bsd_pixel=0"
    assert declared("5").row_key({"method": "ours", "hfd": False, "bsd_region": True, "bsd_pixel": False}) == \
        "bsd_region=1 bsd_pixel=0"
    assert declared("8").row_key({"method": "ours", "beta": 0.05}) == "0.05"
    assert declared("7").row_key({"method": "ours", "alpha": 1}) == "1"
    assert declared("9").row_key({"method": "vanilla", "gamma": 2.0}) == "vanilla"
    assert declared("1").row_key({"method": "kdcl"}) == "kdcl"


def test_declared_rows_match_the_paper_settings() -> None:
    """Each sweep's declared row keys are the paper transcription's, so --paper lines them up."""
    for number in ("1", "4", "5", "6", "7", "8", "9"):
        declared_keys = [key for key, _ in declared(number).rows]
        paper_keys = [key for key, _ in paper_table(number).rows]
        assert set(paper_keys) <= set(declared_keys), number


def test_a_new_table_needs_only_its_declaration() -> None:
    spec = TableSpec("toy", "Toy weight", varies=("toy_weight",), label_columns=("w",)).with_rows(
        [({"method": "vanilla"}, ("none",)), ({"method": "toy", "toy_weight": 0.5}, ("half",))])
    assert TableSpec.from_dict(spec.to_dict()) == spec
    trials = pd.DataFrame([
        {"method": m, "toy_weight": w, "seed": 0, "cnn": "c", "vit": "v", "status": "finished",
         "miou_cnn": x, "miou_vit": x} for m, w, x in [("vanilla", 0.0, 1.0), ("toy", 0.5, 2.0), ("toy", 2, 4.0)]])
    frame = render_table("table_toy", spec, "Toy", trials, None).frame
    assert frame["w"].tolist() == ["none", "half", "2"]
    assert frame["Δ"].tolist() == ["0.00", "+2.00", "+6.00"]


def test_a_row_label_per_label_column() -> None:
    with pytest.raises(ValueError, match="1 label cells for 2 label columns"):
        TableSpec("x", "X", label_columns=("a", "b"), rows=(("vanilla", ("only one",)),))


def test_switch_table_layout_from_trials() -> None:
    trials = pd.DataFrame([
        {"method": "vanilla", "hfd": False, "bsd_region": False, "bsd_pixel": False, "seed": 0,
         "cnn": "mobilenet_v2", "vit": "mit_b1", "status": "finished", "miou_cnn": 50.0, "miou_vit": 60.0},
        {"method": "ours", "hfd": False, "bsd_region": True, "bsd_pixel": False, "seed": 0,
         "cnn": "mobilenet_v2", "vit": "mit_b1", "status": "finished", "miou_cnn": 50.5, "miou_vit": 59.0},
    ])
    frame = render_table("table5", declared("5"), "Table 5", trials, None).frame
    assert frame.columns.tolist() == ["L_R", "L_P", "MobileNetV2", "MiT-B1", "Δ"]
    assert frame.iloc[1].tolist() == ["✓", "✗", "50.50 (+0.50)", "59.00 (-1.00)", "-0.50"]
    assert frame.iloc[2].tolist() == ["✗", "✓", "—", "—", "—"]


def test_no_vanilla_means_no_gain() -> None:
    trials = pd.DataFrame([{"method": "ours", "alpha": 1.0, "seed": 0, "cnn": "resnet18", "vit": "mit_b0",
                            "status": "finished", "miou_cnn": 50.0, "miou_vit": 60.0}])
    table = render_table("table7", declared("7"), "Table 7", trials, None)
    assert table.frame.set_index("α").loc["1.0"].tolist() == ["50.00", "60.00", "—"]
    assert any("No finished Vanilla trial for ResNet-18+MiT-B0" in n for n in table.notes)


def test_t_interval_needs_two_values() -> None:
    assert all(math.isnan(v) for v in t_interval([1.0]))
    assert t_interval([1.0, 3.0]) == pytest.approx((2 - 12.7062047 * 1, 2 + 12.7062047 * 1))


def test_unpaired_seeds_give_no_interval() -> None:
    trials = assign_rows(pd.DataFrame([
        {"method": m, "alpha": 1.0, "seed": s, "cnn": "c", "vit": "v", "status": "finished",
         "miou_cnn": x, "miou_vit": x} for m, s, x in
        [("vanilla", 0, 1.0), ("vanilla", 1, 2.0), ("ours", 2, 3.0), ("ours", 3, 5.0)]]), declared("7"))
    cnn = summarise(trials, "vanilla").query("row == '1' and student == 'cnn'").iloc[0]
    assert cnn["gain"] == pytest.approx(2.5) and math.isnan(cnn["ci_low"])
    assert format_student(cnn.to_dict(), False) == "4.00 ± 1.41 (n=2) (+2.50)"


@pytest.mark.parametrize("fmt", ["md", "latex", "csv"])
def test_output_formats(table7, fmt: str) -> None:
    text = to_text(table7, fmt)
    assert "62.17 ± 1.04 (n=3) (+1.17 [+0.45, +1.88]*)" in text
    if fmt == "md":
        assert "| Vanilla | 61.00 ± 1.00 (n=3)" in text and "+1.20 [+0.95, +1.45]*" in text
    if fmt == "latex":
        assert "\\begin{tabular}" in text and "\\caption{Table 7}" in text and "95 \\%" in text
    if fmt == "csv":
        assert pd.read_csv(__import__("io").StringIO(text)).shape == (6, 4)
