"""Evaluation protocols: how a validation image is cropped, padded and predicted.

Two stages, in this order:

1. :meth:`EvalProtocol.prepare` runs on the raw dataset item (uint8 image, int64
   mask) *before* normalisation, so that padding uses the true mean colour and the
   resize sees real pixel values; the scored mask is the one it returns.
2. :meth:`EvalProtocol.predict` runs on the normalised batch; it pads with 0, which
   is the mean colour after normalisation, to sides divisible by ``pad_multiple``
   (both students need multiples of 32) and crops the logits back.

Logits are cast to fp32 as they leave the model: under bf16 autocast the argmax and the
sliding-window sums would otherwise run in bf16 (8 bits of mantissa), which flips close calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2

from cotrain.data.checks import IGNORE_INDEX

IMAGENET_MEAN = (0.485, 0.456, 0.406)
KINDS = ("whole", "center_crop", "sliding", "resize")

ModelFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class EvalProtocol:
    """How to evaluate one dataset.

    Attributes:
        kind: ``whole`` (full image), ``center_crop`` (crop×crop centre, padded when
            smaller), ``sliding`` (window×window tiles every ``stride`` pixels, logits
            averaged over overlaps) or ``resize`` (image and mask resized to ``size``).
        crop: Side of the centre crop.
        window: Side of the sliding window.
        stride: Step between sliding windows.
        size: ``(height, width)`` for ``resize``.
        pad_multiple: Model inputs are padded to a multiple of this.
        window_batch: Sliding windows per model call.
        mean: Per-channel mean in [0, 1], the colour used to pad raw images.
    """

    kind: Literal["whole", "center_crop", "sliding", "resize"] = "whole"
    crop: int = 512
    window: int = 1024
    stride: int = 768
    size: tuple[int, int] = (360, 480)
    pad_multiple: int = 32
    window_batch: int = 4
    mean: tuple[float, float, float] = IMAGENET_MEAN

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", tuple(self.size))
        object.__setattr__(self, "mean", tuple(self.mean))
        if self.kind not in KINDS:
            raise ValueError(f"unknown eval protocol kind {self.kind!r}; allowed: {', '.join(KINDS)}")
        positive = {"crop": self.crop, "window": self.window, "stride": self.stride, "pad_multiple": self.pad_multiple,
                    "window_batch": self.window_batch, "size": min(self.size)}  # fmt: skip
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"eval protocol {name} must be positive; got {value}")
        if self.stride > self.window:
            raise ValueError(
                f"sliding stride {self.stride} > window {self.window} would skip pixels; use stride <= window"
            )

    @classmethod
    def from_spec(cls, spec: Any, **overrides: Any) -> EvalProtocol:
        """The default protocol of a :class:`cotrain.data.DatasetSpec`, with ``overrides``."""
        settings: Mapping[str, Any] = spec.eval_protocol
        return cls(**{**settings, **overrides})

    def describe(self) -> str:
        """Short human-readable name, e.g. ``"sliding window 1024/768"``."""
        return {
            "whole": "whole image",
            "center_crop": f"center-crop {self.crop}",
            "sliding": f"sliding window {self.window}/{self.stride}",
            "resize": f"whole image at {self.size[0]}x{self.size[1]}",
        }[self.kind]

    def prepare(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Crop or resize a raw item; call before normalisation.

        Args:
            image: uint8 (3, H, W).
            mask: int64 (H, W).

        Returns:
            image uint8 (3, h, w) and mask int64 (h, w): crop×crop for ``center_crop``
            (image padded with the mean colour, mask with 255, when smaller), ``size``
            for ``resize`` (bilinear image, nearest mask), unchanged otherwise.
        """
        pair = (tv_tensors.Image(image), tv_tensors.Mask(mask))
        if self.kind == "center_crop":
            pair = _pad_to_at_least(pair, self.crop, self.crop, self.mean)
            pair = tuple(v2.functional.center_crop(x, [self.crop, self.crop]) for x in pair)
        elif self.kind == "resize":
            # v2 dispatches on the tv_tensor type: bilinear for the image, nearest for the mask
            pair = tuple(v2.functional.resize(x, list(self.size), antialias=True) for x in pair)
        return pair[0].as_subclass(torch.Tensor), pair[1].as_subclass(torch.Tensor)

    def predict(self, model_fn: ModelFn, images: torch.Tensor) -> torch.Tensor:
        """Logits for a normalised batch.

        Args:
            model_fn: Maps (n, 3, h, w) to logits (n, K, h, w); h and w are multiples
                of ``pad_multiple``.
            images: float (N, 3, H, W), normalised.

        Returns:
            fp32 logits (N, K, H, W).
        """
        if self.kind == "sliding":
            return self._predict_sliding(model_fn, images)
        return padded_forward(model_fn, images, self.pad_multiple)

    def _predict_sliding(self, model_fn: ModelFn, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        padded = F.pad(images, (0, max(self.window - width, 0), 0, max(self.window - height, 0)))
        boxes = [(n, y, x) for n in range(len(images))
                 for y in window_starts(padded.shape[-2], self.window, self.stride)
                 for x in window_starts(padded.shape[-1], self.window, self.stride)]  # fmt: skip
        logits = count = None
        for first in range(0, len(boxes), self.window_batch):
            chunk = boxes[first : first + self.window_batch]
            tiles = torch.stack([padded[n, :, y : y + self.window, x : x + self.window] for n, y, x in chunk])
            out = padded_forward(model_fn, tiles, self.pad_multiple)
            if logits is None:
                logits = out.new_zeros((len(images), out.shape[1], *padded.shape[-2:]))
                count = out.new_zeros((len(images), 1, *padded.shape[-2:]))
            for tile, (n, y, x) in zip(out, chunk, strict=True):
                logits[n, :, y : y + self.window, x : x + self.window] += tile
                count[n, :, y : y + self.window, x : x + self.window] += 1
        return (logits / count)[..., :height, :width]


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows covering ``length``; the last one is flush with the end.

    ``length`` must be at least ``window`` (pad first).
    """
    steps = max(math.ceil((length - window) / stride), 0) + 1
    return [min(i * stride, length - window) for i in range(steps)]


def padded_forward(model_fn: ModelFn, images: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad bottom/right with 0 (the normalised mean) to a multiple of ``multiple``, run, crop back.

    Args:
        images: float (N, 3, H, W), normalised.

    Returns:
        fp32 logits (N, K, H, W), whatever precision the model ran in.
    """
    height, width = images.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    logits = model_fn(F.pad(images, (0, pad_w, 0, pad_h)) if pad_h or pad_w else images)
    return logits[..., :height, :width].float()


def _pad_to_at_least(
    item: tuple[tv_tensors.Image, tv_tensors.Mask], height: int, width: int, mean: Sequence[float]
) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    """Pad evenly on all sides up to ``height`` × ``width``: image with the mean colour, mask with 255."""
    h, w = item[1].shape[-2:]
    dh, dw = max(height - h, 0), max(width - w, 0)
    if not dh and not dw:
        return item
    padding = [dw // 2, dh // 2, dw - dw // 2, dh - dh // 2]
    image = v2.functional.pad(item[0], padding, fill=[round(255 * m) for m in mean])
    return image, v2.functional.pad(item[1], padding, fill=IGNORE_INDEX)
