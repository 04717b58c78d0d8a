"""Declaring a configurable option once: its default, help and check (imports no torch).

A config key is a dataclass field made by :func:`option`. The run config (``cotrain/config.py``)
and each method's own options (its ``Options``, declared in ``cotrain/methods/<name>/``) are built from such fields;
the CLI flags, the YAML keys, Ray Tune's search space and the table columns all come from them.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from typing import Any, Callable, Iterable, Optional, Union

from cotrain.errors import ConfigError

Check = Callable[[Any], Optional[str]]


def option(default: Any, help: str, check: Optional[Check] = None, **kw: Any) -> Any:
    """A config field. ``check(value)`` returns None or what is wrong; ``cli=False`` keeps it off the
    command line."""
    return field(default=default, metadata={"help": help, "check": check, **kw})


def nonneg(v: float) -> Optional[str]:
    return None if math.isfinite(v) and v >= 0 else "must be a finite number >= 0"


def positive(v: float) -> Optional[str]:
    return None if math.isfinite(v) and v > 0 else "must be a finite number > 0"


def fraction(v: float) -> Optional[str]:
    return None if 0 <= v < 1 else "must be in [0, 1)"


def at_least(n: int) -> Check:
    return lambda v: None if v >= n else f"must be >= {n}"


def one_of(options: Union[Iterable[Any], Callable[[], Iterable[Any]]]) -> Check:
    """Allowed values, or a function giving them (a registry read when the check runs)."""
    def check(v: Any) -> Optional[str]:
        allowed = list(options() if callable(options) else options)
        return None if v in allowed else f"allowed: {', '.join(map(str, allowed))}"
    return check


def parse_grid(text: str) -> Optional[tuple[int, int]]:
    """``"4x8"`` -> (4, 8); None when malformed."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def parse_rates(text: str) -> Optional[tuple[int, int, int]]:
    """``"6,12,18"`` -> (6, 12, 18); None when malformed."""
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
        return None
    return tuple(int(p) for p in parts)


def parse_scale(text: str) -> Optional[tuple[float, float]]:
    """``"0.5,2.0"`` -> (0.5, 2.0); None when malformed or not 0 < low <= high."""
    try:
        low, high = (float(p) for p in text.split(","))
    except ValueError:
        return None
    return (low, high) if 0 < low <= high else None


def parses(parser: Callable[[str], Any], expected: str) -> Check:
    """A check that the text parses, e.g. ``parses(parse_grid, "HxW with H, W >= 1, e.g. 4x4")``."""
    return lambda v: None if parser(v) is not None else f"must be {expected}"


def base_type(f: dataclasses.Field) -> type:
    """bool, int, float or str: what the field holds when it is not None."""
    text = str(f.type)  # "float", "Optional[str]" (string annotations) or "<class 'float'>"
    for name, typ in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if name in text:
            return typ
    raise TypeError(f"unsupported config type {text}")


def check_field(f: dataclasses.Field, value: Any) -> None:
    """Validate one field's type and range; raise ConfigError naming it."""
    if value is None:
        if f.default is None:
            return
        raise ConfigError(f"{f.name}=None is invalid: a value is required")
    expected = base_type(f)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{f.name}={value!r} is invalid: expected {expected.__name__}")
    problem = f.metadata.get("check") and f.metadata["check"](value)
    if problem:
        raise ConfigError(f"{f.name}={value!r} is invalid: {problem}")


def check_fields(instance: Any) -> None:
    """Validate every field of a dataclass instance (call from ``__post_init__``)."""
    for f in dataclasses.fields(instance):
        check_field(f, getattr(instance, f.name))
