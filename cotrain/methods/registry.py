"""The method registry: each method's name, options, table label and implementation (imports no torch).

A built-in method is declared by its package's ``__init__`` (``declare_method``), naming its implementation
as ``"module:Class"``: the module (torch) is imported by the first ``get_method``, so the run config, CLI
flags, sweeps and tables read the declarations without loading torch. A plugin may instead decorate its
``Method`` subclass with ``@register_method``.
"""
from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass
from typing import Any, Mapping, Optional, TypeVar, Union

from cotrain.methods.options import NoOptions

M = TypeVar("M", bound=type)


@dataclass(frozen=True)
class MethodEntry:
    """One selectable method.

    Attributes:
        name: its config value (``method=offline_kd``).
        Options: its frozen options dataclass (a ``NoOptions`` subclass).
        display_name: its row label in tables (``Offline KD``).
        impl: its ``Method`` subclass, or ``"module:Class"`` imported on first use.
    """

    name: str
    Options: type
    display_name: str
    impl: Union[type, str]

    def load(self) -> type:
        """The implementation class; a ``"module:Class"`` one is imported now and checked against the declaration."""
        if not isinstance(self.impl, str):
            return self.impl
        module, _, attr = self.impl.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        if (cls.name, cls.Options) != (self.name, self.Options):
            raise TypeError(f"{self.impl} has name {cls.name!r} and Options {cls.Options.__name__}; "
                            f"method {self.name!r} was declared with {self.Options.__name__}")
        return cls


METHODS: dict[str, MethodEntry] = {}


def declare_method(name: str, impl: Union[type, str], options: type = NoOptions,
                   display_name: Optional[str] = None) -> MethodEntry:
    """Make a method, and its options, selectable by name everywhere; ``impl`` may be ``"module:Class"``."""
    entry = MethodEntry(name, options, display_name or name, impl)
    _check_options(entry)
    METHODS[name] = entry
    return entry


def register_method(cls: M) -> M:
    """Class decorator (plugins): declare a ``Method`` subclass by its ``name``, ``Options`` and ``display_name``."""
    declare_method(cls.name, cls, cls.Options, getattr(cls, "display_name", None))
    return cls


def _check_options(entry: MethodEntry) -> None:
    """An option another method declares too must be the same declaration (default, type, help)."""
    known = {f.name: (f, owner) for owner in METHODS.values() for f in dataclasses.fields(owner.Options)
             if owner.name != entry.name}
    for f in dataclasses.fields(entry.Options):
        other, owner = known.get(f.name, (f, entry))
        if (other.default, str(other.type), other.metadata["help"]) != (f.default, str(f.type), f.metadata["help"]):
            raise TypeError(f"option {f.name!r} of method {entry.name!r} differs from method {owner.name!r}'s; "
                            "declare it once, in an Options base both inherit")


def option_fields() -> list[dataclasses.Field]:
    """Every registered method's option fields, each name once, in registration order."""
    seen: dict[str, dataclasses.Field] = {}
    for entry in METHODS.values():
        for f in dataclasses.fields(entry.Options):
            seen.setdefault(f.name, f)
    return list(seen.values())


def options_for(method: str, values: dict[str, Any]) -> Any:
    """``method``'s ``Options`` from the values it declares (the other methods' keys are ignored)."""
    options = method_entry(method).Options
    names = {f.name for f in dataclasses.fields(options)}
    return options(**{k: v for k, v in values.items() if k in names})


def needs_teachers(values: Mapping[str, Any]) -> bool:
    """Whether a run (a config dict, or a sweep cell merged over its base config) needs frozen Vanilla teachers.

    True for ``offline_kd`` and for ``ifvd`` in its offline mode (the default): the runs a staged sweep
    must hand ``teacher_cnn``/``teacher_vit`` from its Vanilla stage. Keys ``values`` lacks take the method's
    option defaults; without a ``method`` key it is False. Each method declares it (``Options.needs_teachers``).
    """
    method = values.get("method")
    return method is not None and options_for(method, dict(values)).needs_teachers()


def method_entry(name: str) -> MethodEntry:
    """A registered method's declaration; unknown names fail with the allowed ones."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; allowed: {', '.join(sorted(METHODS))}")
    return METHODS[name]


def get_method(name: str) -> type:
    """A registered method's ``Method`` subclass (importing its module, and torch, on first use)."""
    return method_entry(name).load()
