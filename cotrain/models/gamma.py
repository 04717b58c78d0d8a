"""Γ transforms (docs/method.md, "Γ transforms"): 1×1 conv + BatchNorm, then adaptive average
pooling to a target grid."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Gamma(nn.Module):
    """Map (N, C_in, H, W) features to (N, C_out, h, w) with h, w given at call time.

    Each Γ belongs to the student whose features it transforms and is trained by that
    student's optimizer.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = self.norm(self.proj(x))
        return x if tuple(x.shape[-2:]) == tuple(size) else F.adaptive_avg_pool2d(x, size)
