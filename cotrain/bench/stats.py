"""Step-time ratios that hold on a noisy machine: interleaved rounds, one ratio per round, a 95 % interval.

Cases are timed in rounds (every case a few steps per round, taking turns step by step, in an order
rotated every round), so a slow spell of the machine hits every case of a round alike and cancels in
that round's ratio. The ratio printed is
the geometric mean of the per-round ratios, with a Student-t 95 % interval on their logarithms.
No SciPy: the machines lent for GPU checks may lack it.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Two-sided 95 % quantiles of Student's t by degrees of freedom; between entries the lower df (wider) is used.
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
         20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


@dataclass(frozen=True)
class Ratio:
    """A ratio of step times: geometric mean over rounds and its 95 % interval (nan with one round)."""

    value: float
    low: float
    high: float
    rounds: int

    def text(self) -> str:
        if math.isnan(self.low):
            return f"{self.value:.3f}"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def overlaps(self, other: Ratio) -> bool:
        """Whether the two intervals share a value (two runs agree)."""
        return self.low <= other.high and other.low <= self.high


def t975(df: int) -> float:
    """The two-sided 95 % quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("an interval needs at least two rounds")
    known = [d for d in _T975 if d <= df]
    return _T975[max(known)] if df <= 120 else 1.960


def ratio_interval(ratios: Sequence[float]) -> Ratio:
    """Geometric mean of per-round ratios with a t-interval on their logarithms."""
    logs = [math.log(r) for r in ratios]
    centre = statistics.fmean(logs)
    if len(logs) < 2:
        return Ratio(math.exp(centre), math.nan, math.nan, len(logs))
    half = t975(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return Ratio(math.exp(centre), math.exp(centre - half), math.exp(centre + half), len(logs))


def round_ratios(case_rounds: Sequence[Sequence[float]], base_rounds: Sequence[Sequence[float]]) -> list[float]:
    """One ratio per round: the median step of the case over the median step of the base, same round."""
    return [statistics.median(c) / statistics.median(b) for c, b in zip(case_rounds, base_rounds)]


def round_order(cases: Sequence[str], round_index: int) -> list[str]:
    """The cases' order in one round: rotated by the round, reversed every other round (no case always first)."""
    shift = round_index % len(cases)
    order = list(cases[shift:]) + list(cases[:shift])
    return order[::-1] if round_index % 2 else order


def interleave(cases: Sequence[str], rounds: int, steps: int, step: Callable[[str], float],
               on_round: Callable[[int, dict[str, list[float]]], None] = lambda index, times: None,
               ) -> dict[str, list[list[float]]]:
    """``rounds`` rounds of ``steps`` timed steps of every case (``step(case)`` returns one step's seconds).

    Within a round the cases take turns step by step (A B C A B C ...), so a change of the machine's
    speed mid-round reaches every case of the round alike.
    """
    out: dict[str, list[list[float]]] = {case: [] for case in cases}
    for index in range(rounds):
        order = round_order(cases, index)
        this_round: dict[str, list[float]] = {case: [] for case in order}
        for _ in range(steps):
            for case in order:
                this_round[case].append(step(case))
        for case, times in this_round.items():
            out[case].append(times)
        on_round(index, this_round)
    return out
