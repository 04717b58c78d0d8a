"""The GPU check's one-process driver: every case runs in one long-lived worker; a failing or skipped case
does not stop it, one over its limit gets the worker stopped and the next case a fresh one, a case that
would not fit the budget is skipped. This module stays light (no torch at import): the worker imports it
to find the cases below."""
from __future__ import annotations

import os
import time

from cotrain import bench_gpu
from cotrain.bench.worker import CaseSkipped, CaseWorker


def _ok() -> dict:
    return {"step_s": 0.5, "images_per_s": 8.0, "pid": os.getpid()}


def _boom() -> dict:
    raise RuntimeError("compile failed\nsecond line")


def _skip() -> dict:
    raise CaseSkipped("8 trials would need 200 GiB")


def _slow() -> dict:
    time.sleep(120)
    return {}


def _case(check: str, fn, limit_s: float = 300, expect_s: float = 1) -> bench_gpu.Case:
    return bench_gpu.Case(check, {"case": check}, expect_s, limit_s, fn, ())


def test_every_case_runs_in_one_worker_and_a_failing_or_skipped_one_does_not_stop_it():
    worker = CaseWorker()
    try:
        rows = bench_gpu.run_check([_case("a", _ok), _case("boom", _boom), _case("skip", _skip), _case("b", _ok)],
                                   budget_s=300, worker=worker)
    finally:
        worker.close()
    assert [r["check"] for r in rows] == ["start", "a", "boom", "skip", "b"]
    assert [r["status"] for r in rows] == ["ok", "ok", "failed", "skipped", "ok"]
    assert rows[2]["note"] == "RuntimeError: compile failed"
    assert rows[3]["note"] == "8 trials would need 200 GiB"
    assert rows[1]["pid"] == rows[4]["pid"] == rows[0]["worker"] != os.getpid()  # one process for all
    assert len(worker.starts) == 1


def test_a_case_over_its_limit_stops_the_worker_and_the_next_case_gets_a_fresh_one():
    worker = CaseWorker()
    try:
        rows = bench_gpu.run_check([_case("slow", _slow, limit_s=5), _case("ok", _ok)], budget_s=300, worker=worker)
    finally:
        worker.close()
    assert [(r["check"], r["status"]) for r in rows] == [("start", "ok"), ("slow", "timeout"), ("start", "ok"),
                                                         ("ok", "ok")]
    assert rows[1]["seconds"] < 60 and rows[0]["worker"] != rows[3]["pid"]


def test_cases_expected_to_overrun_the_budget_are_skipped_without_starting_them():
    worker = CaseWorker()
    try:
        rows = bench_gpu.run_check([_case("ok", _ok, expect_s=1), _case("big", _ok, expect_s=10_000)], budget_s=120,
                                   worker=worker)
    finally:
        worker.close()
    assert [(r["check"], r["status"]) for r in rows] == [("start", "ok"), ("ok", "ok"), ("big", "skipped")]
    assert "out of time budget" in rows[2]["note"]
