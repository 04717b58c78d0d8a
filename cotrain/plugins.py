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
import sys
from types import TracebackType
from typing import Optional

from cotrain.errors import PluginError

ENV_VAR = "COTRAIN_PLUGINS"
EXIT_USAGE = 2  # as cotrain.cli's one-line errors (not imported: the run config is not built yet)


def plugin_modules() -> list[str]:
    return [name.strip() for name in os.environ.get(ENV_VAR, "").split(",") if name.strip()]


def load_plugins() -> list[str]:
    """Import every module named in ``$COTRAIN_PLUGINS``; one that is missing or raises is a ``PluginError``
    naming it (a command then ends with that one line and exit code 2, see ``_one_line_hook``)."""
    names = plugin_modules()
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            _fail(f"{ENV_VAR}: cannot import plugin module {name!r} ({exc}); is its folder on PYTHONPATH?", exc)
        except Exception as exc:  # the plugin's own code raised
            where = _origin(exc)
            _fail(f"{ENV_VAR}: plugin module {name!r} raised {type(exc).__name__} while it was imported: {exc}"
                  f"{where}; fix it or remove it from {ENV_VAR}", exc)
    return names


def _origin(exc: BaseException) -> str:
    """`` (file:line)`` of the innermost frame of ``exc``, where the plugin raised."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f" ({tb.tb_frame.f_code.co_filename}:{tb.tb_lineno})" if tb is not None else ""


def _fail(message: str, cause: BaseException) -> None:
    """Raise ``PluginError(message)``; uncaught, it prints as one line with exit code 2 instead of a traceback
    (it surfaces while ``cotrain`` is imported, before any command's own error handling runs)."""
    sys.excepthook = _one_line_hook(sys.excepthook)
    raise PluginError(" ".join(message.split())) from cause


def _one_line_hook(previous):
    def hook(kind: type, value: BaseException, tb: Optional[TracebackType]) -> None:
        if not isinstance(value, PluginError):
            return previous(kind, value, tb)
        print(f"error: {value}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(EXIT_USAGE)  # an uncaught exception would exit 1; nothing has started yet
    return hook
