"""Every error type cotrain raises for the user, in one bottom module (imports nothing from cotrain, no torch).

The commands turn most of them into one line on stderr and exit code 2 (``cotrain.cli.guarded``).
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is not allowed; the message is one line naming it."""


class WeightsError(ConfigError):
    """ImageNet weights are neither cached nor downloadable; the message says how to get them."""


class DataError(ValueError):
    """The dataset on disk is missing, incomplete or malformed; the message names the file."""

    def __str__(self) -> str:
        text = super().__str__()
        # Re-raised from a DataLoader worker, the message carries the worker's traceback: keep our line.
        marker = f"{type(self).__name__}: "
        last = text.rstrip().splitlines()[-1] if text.strip() else text
        return last.split(marker, 1)[1] if "Original Traceback" in text and marker in last else text


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or does not fit the run."""


class DiskFullError(RuntimeError):
    """The device under ``--out``/``--storage`` is full (or over quota); the message names the file and what next."""


class PluginError(ImportError):
    """A module named in ``$COTRAIN_PLUGINS`` is missing or raised while it was imported."""


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or Inf; the message names the term and the step."""


class ClusterError(RuntimeError):
    """The Ray cluster cannot run what was asked: none answered, authentication differs, or too small."""


class ReplicateError(RuntimeError):
    """One seed of a setting failed: the setting fails (with this cause), the search goes on."""
