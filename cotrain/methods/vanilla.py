"""Vanilla: both students trained side by side with CE only, no exchange (Tables 1-3 baseline)."""
from __future__ import annotations

import torch

from cotrain.methods.base import Method, PairContext, register_method


@register_method
class Vanilla(Method):
    """CE only; the reference every gain and Δ is measured against."""

    name = "vanilla"

    def terms(self, ctx: PairContext) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        return ctx.zero(), ctx.zero(), {}
