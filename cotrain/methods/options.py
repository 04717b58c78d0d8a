"""The options bases the methods share (imports no torch: the run config is generated from them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

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

    def needs_teachers(self) -> bool:
        """Whether the method, with these options, distils from frozen Vanilla teachers (``teacher_cnn``,
        ``teacher_vit``) that a staged sweep hands over from its Vanilla stage (``cotrain.methods.needs_teachers``)."""
        return False


@dataclass(frozen=True)
class TemperatureOption(NoOptions):
    temperature: float = option(1.0, "KD temperature T (loss × T²)", positive)


@dataclass(frozen=True)
class LogitKDOptions(TemperatureOption):
    """The logit-KD baselines' options (Offline KD, DML, KDCL)."""

    kd_weight: float = option(1.0, "weight of a baseline's KD term (Offline KD, DML, KDCL)", nonneg)


@dataclass(frozen=True)
class TeacherOptions(NoOptions):
    """The frozen teachers of the offline methods (Offline KD, IFVD's offline form): the *other* architecture's
    student of a Vanilla checkpoint ("the CNN-based and ViT-based students guide each other as teachers", §4.1)."""

    teacher_cnn: Optional[str] = option(None, "offline methods (offline_kd, ifvd): Vanilla checkpoint whose frozen CNN "
                                        "teaches the ViT")
    teacher_vit: Optional[str] = option(None, "offline methods (offline_kd, ifvd): Vanilla checkpoint whose frozen ViT "
                                        "teaches the CNN")
