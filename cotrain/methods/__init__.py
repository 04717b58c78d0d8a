"""Collaborative-learning methods, one package each, declared by name without importing torch.

Adding a method: a folder ``cotrain/methods/<name>/`` holding a torch-free declaration in its
``__init__.py`` (its options, if any, as an ``Options`` dataclass whose fields are made by
``cotrain.options.option``, and one ``declare_method(...)`` line naming the implementation as
``"cotrain.methods.<name>.method:<Class>"``) and the implementation beside it in ``method.py`` (a
``Method`` subclass, imported on the first ``get_method``), plus one import line here. The run config,
CLI flags, YAML keys, sweeps, tables and the registry-parametrised tests pick the method and its options up.
Importing this package (and so ``cotrain.config``) loads no torch; ``Method`` and ``PairContext`` load on use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cotrain.methods import dml, ifvd, kdcl, offline_kd, ours, vanilla  # noqa: F401  (declarations, no torch)
from cotrain.methods.options import LogitKDOptions, NoOptions, TeacherOptions, TemperatureOption
from cotrain.methods.registry import (
    METHODS,
    MethodEntry,
    declare_method,
    get_method,
    method_entry,
    needs_teachers,
    option_fields,
    options_for,
    register_method,
)

if TYPE_CHECKING:
    from cotrain.methods.base import Method, PairContext

__all__ = ["METHODS", "LogitKDOptions", "Method", "MethodEntry", "NoOptions", "PairContext", "TeacherOptions",
           "TemperatureOption", "declare_method", "get_method", "method_entry", "needs_teachers", "option_fields",
           "options_for", "register_method"]


def __getattr__(name: str) -> Any:
    # Lazy: Method and PairContext need torch, which the run config (and Ray's driver side) does without.
    if name in ("Method", "PairContext"):
        from cotrain.methods import base
        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


from cotrain.plugins import load_plugins  # noqa: E402  (after the built-ins: a plugin may extend them)

load_plugins()
