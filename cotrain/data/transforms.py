"""Paired image/mask transforms on torchvision.transforms.v2.

Images are wrapped as ``tv_tensors.Image`` and masks as ``tv_tensors.Mask``, so
v2 resizes masks with nearest neighbour and never blends labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from cotrain.data.checks import IGNORE_INDEX

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def mean_rgb_uint8(mean: Sequence[float]) -> list[int]:
    """The mean colour in 0-255, used to pad images so padding normalises to 0."""
    return [round(255 * m) for m in mean]


class RandomScale(v2.Transform):
    """Resize by a factor drawn uniformly from ``scale_range`` (bilinear images, nearest masks)."""

    def __init__(self, scale_range: tuple[float, float]) -> None:
        super().__init__()
        low, high = scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high; got {scale_range}")
        self.scale_range = (float(low), float(high))

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.functional.get_size(next(x for x in flat_inputs if isinstance(x, tv_tensors.Image)))
        factor = float(torch.empty(()).uniform_(*self.scale_range))
        return {"size": [max(1, round(height * factor)), max(1, round(width * factor))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        return v2.functional.resize(inpt, params["size"], antialias=True)


class PairTransform:
    """Apply a v2 pipeline to ``(image, mask)`` and return plain tensors.

    Args:
        pipeline: v2 transform taking and returning ``(Image, Mask)``.
    """

    def __init__(self, pipeline: v2.Transform) -> None:
        self.pipeline = pipeline

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Transform one item.

        Args:
            image: uint8 (3, H, W).
            mask: int64 (H, W), train IDs and 255.

        Returns:
            float32 normalised image (3, h, w) and int64 mask (h, w).
        """
        out_image, out_mask = self.pipeline(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return out_image.as_subclass(torch.Tensor), out_mask.as_subclass(torch.Tensor).long()

    def __repr__(self) -> str:
        return f"PairTransform({self.pipeline})"


def _normalise(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ValueError(f"mean and std need 3 values each and std > 0; got mean={mean}, std={std}")
    return [
        v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
        v2.Normalize(list(mean), list(std)),
    ]


def train_transform(
    crop_size: int | tuple[int, int],
    scale_range: tuple[float, float] = (0.5, 2.0),
    hflip: bool = True,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> PairTransform:
    """Random scale, random crop (padding image with the mean, mask with 255), flip, normalise.

    Args:
        crop_size: Output side, or ``(height, width)``.
        scale_range: Range of the random resize factor of the whole image.
        hflip: Flip horizontally with probability 0.5.
        mean: Per-channel mean in [0, 1].
        std: Per-channel std.

    Returns:
        Callable ``(uint8 (3, H, W), int64 (H, W)) -> (float32 (3, h, w), int64 (h, w))``.
    """
    size = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"crop_size must be a positive int or (height, width); got {crop_size}")
    fill = {tv_tensors.Image: mean_rgb_uint8(mean), tv_tensors.Mask: IGNORE_INDEX}
    steps = [RandomScale(scale_range), v2.RandomCrop(size, pad_if_needed=True, fill=fill)]
    steps += [v2.RandomHorizontalFlip()] if hflip else []
    return PairTransform(v2.Compose(steps + _normalise(mean, std)))


def eval_transform(mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> PairTransform:
    """Only convert to float and normalise; the mask is returned unchanged.

    Returns:
        Callable ``(uint8 (3, H, W), int64 (H, W)) -> (float32 (3, H, W), int64 (H, W))``.
    """
    return PairTransform(v2.Compose(_normalise(mean, std)))
