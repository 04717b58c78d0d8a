"""Vanilla's (empty) KD terms (declared in this package's ``__init__``)."""
from __future__ import annotations

import torch

from cotrain.methods.base import Method, PairContext


class Vanilla(Method):
    """CE only; the reference every gain and Δ is measured against."""

    name = "vanilla"

    def terms(self, ctx: PairContext) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        return ctx.zero(), ctx.zero(), {}
