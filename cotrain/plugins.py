"""Methods, encoders and datasets from outside the package: ``COTRAIN_PLUGINS=module[,module...]``.

Each module is imported once the built-in methods are registered and before the run config is
generated, so what it registers (``@register_method`` with its ``Options``, ``register_encoder``,
``register_dataset``) is a config key, a CLI flag, a sweep cell and a table row like a built-in.
A plugin must not import ``cotrain.config`` (that module is being built from the registries).
Ray's workers inherit the variable from the driver on one machine; on a cluster, set it (and make
the module importable) on every node.
"""
from __future__ import annotations

import importlib
import os

ENV_VAR = "COTRAIN_PLUGINS"


def plugin_modules() -> list[str]:
    return [name.strip() for name in os.environ.get(ENV_VAR, "").split(",") if name.strip()]


def load_plugins() -> list[str]:
    """Import every module named in ``$COTRAIN_PLUGINS``; a missing one fails naming it."""
    names = plugin_modules()
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(f"{ENV_VAR}: cannot import plugin module {name!r} ({exc}); "
                              "is its folder on PYTHONPATH?") from exc
    return names
