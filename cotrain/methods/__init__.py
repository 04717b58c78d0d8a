"""Collaborative-learning methods, each in one file and registered by name.

Adding a method: a file defining a ``Method`` subclass decorated with ``@register_method`` (with its
options, if any, as an ``Options`` dataclass beside it), imported here. The run config, CLI flags,
YAML keys, sweeps, tables and the registry-parametrised tests pick the method and its options up.
"""
from cotrain.methods import dml, ifvd, kdcl, offline_kd, ours, vanilla  # noqa: F401  (registration)
from cotrain.methods.base import (
    METHODS,
    Method,
    NoOptions,
    PairContext,
    get_method,
    option_fields,
    options_for,
    register_method,
)

__all__ = ["METHODS", "Method", "NoOptions", "PairContext", "get_method", "option_fields", "options_for",
           "register_method"]

from cotrain.plugins import load_plugins  # noqa: E402  (after the built-ins: a plugin may extend them)

load_plugins()
