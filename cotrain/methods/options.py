"""The options bases the methods share (imports no torch: the run config is generated from them)."""
from __future__ import annotations

from dataclasses import dataclass

from cotrain.options import check_fields, nonneg, option, positive


@dataclass(frozen=True)
class NoOptions:
    """The options of a method that has none; every method's ``Options`` derives from it.

    A method declares its options once, as fields made by ``cotrain.options.option`` on its own
    ``Options`` dataclass; the run config, CLI flags, YAML keys, sweep cells and table columns are
    generated from them. Methods that share an option inherit it from one base (below).
    """

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class TemperatureOption(NoOptions):
    temperature: float = option(1.0, "KD temperature T (loss × T²)", positive)


@dataclass(frozen=True)
class LogitKDOptions(TemperatureOption):
    """The logit-KD baselines' options (Offline KD, DML, KDCL)."""

    kd_weight: float = option(1.0, "weight of a baseline's KD term (Offline KD, DML, KDCL)", nonneg)
