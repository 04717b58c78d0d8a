"""The benchmark's smoke mode end to end (no timing assertions) and the step-time cache it fills."""
from __future__ import annotations

import csv

import pytest

from cotrain import bench, estimate
from cotrain.config import resolve


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    out, cache = folder / "bench.csv", folder / "step_times.json"
    code = bench.main(["--smoke", "--steps", "2", "--warmup", "1", "--device", "cpu",
                       "--out", str(out), "--cache", str(cache)])
    return code, out, cache


@pytest.mark.slow  # a fresh process per case: about a minute
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
