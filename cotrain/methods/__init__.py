"""Collaborative-learning methods, each in one file and registered by name.

Adding a method: a file defining a ``Method`` subclass decorated with ``@register_method``,
imported here. Configs, sweeps, tables and the registry-parametrised tests pick it up.
"""
from cotrain.methods import dml, ifvd, kdcl, offline_kd, ours, vanilla  # noqa: F401  (registration)
from cotrain.methods.base import METHODS, LossOptions, Method, PairContext, get_method, register_method

__all__ = ["METHODS", "LossOptions", "Method", "PairContext", "get_method", "register_method"]
