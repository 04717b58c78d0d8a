"""The benchmark's smoke mode end to end (no timing assertions), the step-time cache it fills, and its
ratios' 95 % intervals over interleaved rounds (on a simulated noisy machine, two runs agree)."""
from __future__ import annotations

import csv
import math
import random

import pytest

from cotrain import bench, estimate
from cotrain.bench import stats
from cotrain.config import resolve


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    out, cache = folder / "bench.csv", folder / "step_times.json"
    code = bench.main(["--smoke", "--steps", "2", "--warmup", "1", "--device", "cpu",
                       "--out", str(out), "--cache", str(cache)])
    return code, out, cache


@pytest.mark.slow  # a fresh process per case: 20 s on 2 idle cores
def test_smoke_writes_every_case_and_column(smoke_run):
    code, out, _ = smoke_run
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert {"case", "step_s_median", "peak_mem_mb", "step_ratio_vs_vanilla", "mem_ratio_vs_vanilla",
            "images_per_s"} <= set(rows[0])
    by_case = {row["case"]: row for row in rows}
    assert set(bench.CASES) | {"loader", "eval_whole", "eval_sliding"} <= set(by_case)
    for case in bench.CASES:
        assert float(by_case[case]["step_s_median"]) > 0
        assert float(by_case[case]["peak_mem_mb"]) >= 0
    assert float(by_case["vanilla_pair"]["step_ratio_vs_vanilla"]) == 1.0
    assert int(by_case["hfd_bsd"]["rounds"]) == 3  # SMOKE: 3 interleaved rounds
    low, high = float(by_case["hfd_bsd"]["step_ratio_ci95_low"]), float(by_case["hfd_bsd"]["step_ratio_ci95_high"])
    assert low <= float(by_case["hfd_bsd"]["step_ratio_vs_vanilla"]) <= high
    for case in ("loader", "eval_whole", "eval_sliding"):
        assert float(by_case[case]["images_per_s"]) > 0


@pytest.mark.slow
def test_smoke_caches_step_times_the_estimate_reads(smoke_run):
    _, _, cache = smoke_run
    key = estimate.cache_key("mobilenet_v2+mit_b0", 64, 2, "cpu", "fp32")
    entry = estimate.read_cache(cache)[key]
    assert set(estimate.CASES) <= set(entry["step_s"])
    cfg = resolve("smoke", overrides={"device": "cpu"})
    assert estimate.estimate_step_seconds(cfg, cache) == entry["step_s"]["hfd_bsd"]
    assert estimate.estimate_step_seconds(cfg.replace(method="vanilla"), cache) == entry["step_s"]["vanilla_pair"]


def test_bad_pair_is_rejected():
    with pytest.raises(ValueError, match="CNN\\+ViT"):
        bench.settings_from_args(bench.build_parser().parse_args(["--pair", "mobilenet_v2"]))


def test_round_order_rotates_and_reverses_so_no_case_is_always_first():
    cases = ("a", "b", "c")
    orders = [stats.round_order(cases, i) for i in range(6)]
    assert orders[0] == ["a", "b", "c"] and orders[1] == ["a", "c", "b"]  # rotated by one, reversed
    assert {o[0] for o in orders} == set(cases)
    assert all(sorted(o) == list(cases) for o in orders)


def test_ratio_interval_is_a_t_interval_on_log_ratios():
    ratio = stats.ratio_interval([1.0, 1.2, 1.1, 1.1])
    logs = [math.log(r) for r in (1.0, 1.2, 1.1, 1.1)]
    mean = sum(logs) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / 3)
    assert ratio.value == pytest.approx(math.exp(mean))
    assert ratio.high == pytest.approx(math.exp(mean + 3.182 * sd / 2))  # t(0.975, 3 df) = 3.182
    assert ratio.low < ratio.value < ratio.high and ratio.rounds == 4
    one = stats.ratio_interval([1.3])
    assert one.value == pytest.approx(1.3) and math.isnan(one.low) and one.text() == "1.300"
    assert stats.t975(200) == 1.96 and stats.t975(35) == 2.042  # between table entries: the wider


def _noisy_machine(seed: int, true_ratio: float):
    """A fake step clock: the machine's speed drifts and jumps (another job starts and stops), every step
    has jitter; the ``ours`` case costs ``true_ratio`` times ``vanilla``."""
    rng = random.Random(seed)
    load = [1.0]

    def step(case: str) -> float:
        load[0] = min(max(load[0] * math.exp(rng.gauss(0, 0.05)), 0.5), 3.0)
        if rng.random() < 0.02:
            load[0] = rng.choice([1.0, 2.0])  # a neighbour's job starts or ends
        return (true_ratio if case == "ours" else 1.0) * 0.4 * load[0] * math.exp(rng.gauss(0, 0.05))

    return step


def test_interleaved_rounds_give_ratios_that_two_noisy_runs_agree_on():
    """The issue's symptom: 1.10x then 0.79x a few minutes apart. Interleaved rounds on a machine whose
    speed drifts and jumps by up to 2x: 20 pairs of runs (fixed seeds), each run's interval holds the true
    ratio about 95 % of the time, and the two runs of a pair agree (their intervals overlap)."""
    runs = []
    for seed in range(1, 41):
        times = stats.interleave(("vanilla", "ours"), rounds=10, steps=3, step=_noisy_machine(seed, 1.1))
        runs.append(stats.ratio_interval(stats.round_ratios(times["ours"], times["vanilla"])))
    assert sum(r.low <= 1.1 <= r.high for r in runs) >= 34
    assert sum(runs[i].overlaps(runs[i + 1]) for i in range(0, 40, 2)) >= 19
    assert sorted(r.high / r.low for r in runs)[20] < 1.15  # narrow enough to tell 1.15x from 1.0x
    # The same steps, one case after the other (the old way): the machine's drift lands in the ratio.
    sequential = [_blocked_ratio(seed) for seed in range(1, 21)]
    assert max(sequential) - min(sequential) > 0.5


def _blocked_ratio(seed: int) -> float:
    step = _noisy_machine(seed, 1.1)
    vanilla = [step("vanilla") for _ in range(30)]
    ours = [step("ours") for _ in range(30)]
    return sorted(ours)[15] / sorted(vanilla)[15]


def test_table_prints_each_ratio_with_its_interval():
    rows = [{"case": "vanilla_pair", "step_s_median": 0.4, "step_ratio_vs_vanilla": 1.0, "step_ratio_ci95_low": 1.0,
             "step_ratio_ci95_high": 1.0, "rounds": 10},
            {"case": "hfd_bsd", "step_s_median": 0.44, "step_ratio_vs_vanilla": 1.1, "step_ratio_ci95_low": 1.05,
             "step_ratio_ci95_high": 1.16, "rounds": 10}]
    table = bench.format_table(rows)
    assert "1.100 [1.050, 1.160]" in table and "10 interleaved rounds" in table
