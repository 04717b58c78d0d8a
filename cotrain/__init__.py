"""cotrain: CNN-ViT collaborative learning for semantic segmentation (Zhu et al., ICCV 2023)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cotrain.pair import StudentPair, build_pair

__all__ = ["StudentPair", "build_pair"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Lazy, so that Ray's trial and controller processes (which import cotrain.launch and
    # cotrain.config) do not pay for smp/timm/torchvision, a few seconds per trial.
    if name in __all__:
        from cotrain import pair
        return getattr(pair, name)
    raise AttributeError(f"module 'cotrain' has no attribute {name!r}")
