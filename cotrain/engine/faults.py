"""Fault injection for reliability tests, driven by the ``COTRAIN_FAULT`` environment variable.

Unset (the normal case) it costs one dictionary lookup per step. A value is one or more
faults separated by ``;``, each ``KIND[:TERM]:key=value:...``::

    nan:bsd_p_cnn:epoch=1:step=2              # loss term bsd_p_cnn becomes NaN at that step
    kill:epoch=2:step=1:once=/tmp/marker      # SIGKILL this worker there, the first time only
    pause:epoch=2:step=1:seconds=10           # sleep there: holds a trial mid-run for a test to act on
    nan:bsd_p_cnn:epoch=1:step=1:when=alpha=2.0   # ...only in runs whose config has alpha == 2.0

``once=PATH``: the fault fires only while PATH does not exist, and creates it before firing,
so a retried worker survives. ``when=KEY=VALUE`` targets one config (one sweep cell).
Set the variable before Ray starts: workers of an embedded cluster inherit the driver's environment.
"""
from __future__ import annotations

import functools
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

ENV_VAR = "COTRAIN_FAULT"
KINDS = ("nan", "kill", "pause")


@dataclass(frozen=True)
class Fault:
    """One injected fault: what happens (``kind``, ``term``), where (``epoch``, ``step``) and for whom."""

    kind: str
    epoch: int
    step: int
    term: Optional[str] = None
    once: Optional[str] = None
    when: Optional[tuple[str, str]] = None
    seconds: float = 0.0

    def applies(self, config: Any, epoch: int, step: int) -> bool:
        if (epoch, step) != (self.epoch, self.step):
            return False
        if self.when is not None and not _equal(getattr(config, self.when[0], None), self.when[1]):
            return False
        return self.once is None or not Path(self.once).exists()


def parse(text: str) -> list[Fault]:
    """Parse a ``COTRAIN_FAULT`` value; a malformed one raises ValueError naming it."""
    return [_parse_one(part.strip()) for part in text.split(";") if part.strip()]


def _parse_one(text: str) -> Fault:
    kind, *rest = text.split(":")
    if kind not in KINDS:
        raise ValueError(f"{ENV_VAR}={text!r}: unknown fault kind {kind!r}; allowed: {', '.join(KINDS)}")
    term = rest.pop(0) if kind == "nan" and rest and "=" not in rest[0] else None
    options = dict(item.partition("=")[::2] for item in rest)
    try:
        when = options["when"].split("=", 1) if "when" in options else None
        fault = Fault(kind, int(options["epoch"]), int(options["step"]), term, options.get("once"),
                      tuple(when) if when else None, float(options.get("seconds", 0)))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{ENV_VAR}={text!r}: expected "
                         "KIND[:TERM]:epoch=E:step=S[:once=PATH][:when=KEY=VALUE][:seconds=S]") from exc
    if kind == "pause" and fault.seconds <= 0:
        raise ValueError(f"{ENV_VAR}={text!r}: a pause fault says how long, e.g. pause:epoch=2:step=1:seconds=10")
    if kind == "nan" and not term:
        raise ValueError(f"{ENV_VAR}={text!r}: a nan fault names a loss term, e.g. nan:bsd_p_cnn:epoch=1:step=1")
    return fault


@functools.lru_cache(maxsize=4)
def _faults(text: str) -> list[Fault]:
    return parse(text)


def _equal(actual: Any, wanted: str) -> bool:
    if isinstance(actual, (int, float)) and not isinstance(actual, bool):
        try:
            return math.isclose(float(actual), float(wanted))
        except ValueError:
            return False
    return str(actual).lower() == wanted.lower()


def position(run: Any) -> tuple[int, int]:
    """(epoch, step), both from 1, of the step about to be taken; read off the schedulers' step count,
    so it stays right after a resume."""
    done = next(iter(run.schedulers.values())).last_epoch
    loader = run.train_loader
    per_epoch = len(loader) if run.cfg.max_train_steps is None else min(run.cfg.max_train_steps, len(loader))
    return done // per_epoch + 1, done % per_epoch + 1


def inject(run: Any, losses: dict[str, torch.Tensor]) -> None:
    """Apply the faults of ``COTRAIN_FAULT`` that match this step (called once per training step)."""
    text = os.environ.get(ENV_VAR)
    if not text:
        return
    epoch, step = position(run)
    for fault in _faults(text):
        if not fault.applies(run.cfg, epoch, step):
            continue
        if fault.once is not None:
            Path(fault.once).touch()
        if fault.kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif fault.kind == "pause":
            time.sleep(fault.seconds)
        elif fault.term not in losses:
            raise KeyError(f"{ENV_VAR}: no loss term {fault.term!r}; this method has {sorted(losses)}")
        else:
            losses[fault.term] = losses[fault.term] * float("nan")
