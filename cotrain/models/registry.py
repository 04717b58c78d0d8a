"""Encoder registry: which smp encoders each student accepts, the segmentation model built around
each, and how to run their stride-8 stage.

HFD needs to *call* one student's stride-8 stage on the other student's transformed
stride-4 features, so each encoder family registers a function that returns that stage
as a module taking an NCHW tensor of stride-4 shape. The model around an encoder is the kind's
default (CNN: DeepLabV3+ at output stride 16; ViT: SegFormer) unless the registration names a builder.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn


@dataclass(frozen=True)
class EncoderSpec:
    """How a student is built around one smp encoder.

    Attributes:
        name: smp encoder name (``mobilenet_v2``, ``mit_b1``...).
        kind: ``"cnn"`` (DeepLabV3+) or ``"vit"`` (SegFormer).
        stride8_stage: encoder -> module mapping (N, C4, H/4, W/4) to (N, C8, H/8, W/8).
        build: (encoder name, K, ASPP rates) -> an smp-style model (``encoder``, ``decoder``,
            ``segmentation_head``) with random weights.
    """

    name: str
    kind: str
    stride8_stage: Callable[[nn.Module], nn.Module]
    build: Callable[[str, int, tuple[int, ...]], nn.Module]


def deeplabv3plus(encoder_name: str, num_classes: int, aspp_rates: tuple[int, ...]) -> nn.Module:
    """DeepLabV3+ at output stride 16 (the CNN student)."""
    import segmentation_models_pytorch as smp  # here, not at the top: Ray's driver-side processes skip it
    return smp.DeepLabV3Plus(encoder_name=encoder_name, encoder_weights=None, encoder_output_stride=16,
                             decoder_atrous_rates=tuple(aspp_rates), classes=num_classes)


def segformer(encoder_name: str, num_classes: int, aspp_rates: tuple[int, ...]) -> nn.Module:
    """SegFormer's all-MLP decoder (the ViT student); ``aspp_rates`` do not apply."""
    import segmentation_models_pytorch as smp
    return smp.Segformer(encoder_name=encoder_name, encoder_weights=None, classes=num_classes)


DEFAULT_BUILDERS = {"cnn": deeplabv3plus, "vit": segformer}


class MiTStage(nn.Module):
    """One MiT stage run by itself: ``norm(blocks(patch_embed(x)))``, NCHW in and out."""

    def __init__(self, encoder: nn.Module, index: int) -> None:
        super().__init__()
        self.patch_embed = getattr(encoder, f"patch_embed{index}")
        self.block = getattr(encoder, f"block{index}")
        self.norm = getattr(encoder, f"norm{index}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # smp's MiT LayerNorm reshapes; a transformed (non-contiguous) input must be made contiguous.
        return self.norm(self.block(self.patch_embed(x.contiguous()))).contiguous()


ENCODERS: dict[str, EncoderSpec] = {}


def register_encoder(name: str, kind: str, stride8_stage: Callable[[nn.Module], nn.Module],
                     build: Optional[Callable[[str, int, tuple[int, ...]], nn.Module]] = None) -> None:
    """Register an smp encoder (and, optionally, the model built around it) so that configs, sweeps and
    tests pick it up by name."""
    if kind not in DEFAULT_BUILDERS:
        raise ValueError(f"unknown student kind {kind!r}; allowed: {', '.join(DEFAULT_BUILDERS)}")
    ENCODERS[name] = EncoderSpec(name, kind, stride8_stage, build or DEFAULT_BUILDERS[kind])


def encoder_names(kind: str) -> list[str]:
    """Registered encoder names of one student kind (``"cnn"`` or ``"vit"``)."""
    return sorted(n for n, s in ENCODERS.items() if s.kind == kind)


def get_encoder_spec(name: str, kind: str) -> EncoderSpec:
    """Look up a registered encoder; unknown names fail with the allowed ones."""
    spec = ENCODERS.get(name)
    if spec is None or spec.kind != kind:
        raise ValueError(f"unknown {kind} encoder {name!r}; allowed: {', '.join(encoder_names(kind))}")
    return spec


def _mobilenet_stage8(encoder: nn.Module) -> nn.Module:
    return encoder.features[4:7]  # inverted residuals 4-6: 24 ch stride 4 -> 32 ch stride 8


def _resnet_stage8(encoder: nn.Module) -> nn.Module:
    return encoder.layer2


def _mit_stage8(encoder: nn.Module) -> nn.Module:
    return MiTStage(encoder, 2)


register_encoder("mobilenet_v2", "cnn", _mobilenet_stage8)
for _name in ("resnet18", "resnet34", "resnet50", "resnet101"):
    register_encoder(_name, "cnn", _resnet_stage8)
for _name in ("mit_b0", "mit_b1", "mit_b2", "mit_b3", "mit_b4", "mit_b5"):
    register_encoder(_name, "vit", _mit_stage8)
