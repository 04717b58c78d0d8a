"""cotrain: CNN-ViT collaborative learning for semantic segmentation (Zhu et al., ICCV 2023)."""
from cotrain.models.pair import StudentPair, build_pair

__all__ = ["StudentPair", "build_pair"]
__version__ = "0.1.0"
