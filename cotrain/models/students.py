"""The two students: DeepLabV3+ (CNN) and SegFormer (ViT), built with segmentation-models-pytorch."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from cotrain.models.registry import get_encoder_spec

Weights = Optional[Union[str, Path]]

# smp encoders return [input, stride 2, stride 4, stride 8, stride 16, stride 32] (MiT's stride-2 entry is empty).
LOW_INDEX, MID_INDEX = 2, 3


@dataclass
class StudentOutput:
    """What one forward pass of a student yields.

    Attributes:
        logits: (N, K, H, W) class scores at input resolution.
        low: (N, C1, H/4, W/4) stride-4 features F_1.
        mid: (N, C2, H/8, W/8) stride-8 features F_2.
        last: (N, Cl, h, w) last encoder features F_l.
        decoded: (N, Cd, H/4, W/4) decoder output, the features right before the classifier (IFVD).
    """

    logits: torch.Tensor
    low: torch.Tensor
    mid: torch.Tensor
    last: torch.Tensor
    decoded: Optional[torch.Tensor] = None


class Student(nn.Module):
    """A segmentation model whose encoder stages are reachable by HFD."""

    def __init__(self, kind: str, encoder_name: str, model: nn.Module) -> None:
        super().__init__()
        self.kind = kind
        self.encoder_name = encoder_name
        self.model = model
        # Kept out of the module tree so the shared weights appear once in state_dict().
        self.__dict__["stride8_stage"] = get_encoder_spec(encoder_name, kind).stride8_stage(model.encoder)

    @property
    def channels(self) -> tuple[int, int, int]:
        """Channels of (F_1, F_2, F_l)."""
        out = self.model.encoder.out_channels
        return out[LOW_INDEX], out[MID_INDEX], out[-1]

    def forward(self, images: torch.Tensor) -> StudentOutput:
        """Run encoder, decoder and head once; (N, 3, H, W) -> StudentOutput."""
        features = self.model.encoder(images)
        decoded = self.model.decoder(features)
        logits = self.head(decoded, images.shape[-2:])
        return StudentOutput(logits, features[LOW_INDEX], features[MID_INDEX], features[-1], decoded)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Evaluation logits (N, K, H, W), fp32: encoder and decoder under the caller's autocast, the head without.

        docs/method.md, "Evaluation": a bf16 head rounds the logits to 8 significant bits before any later cast
        to fp32, so close calls of the argmax would be decided by the rounding.
        """
        decoded = self.model.decoder(self.model.encoder(images))
        with torch.autocast(decoded.device.type, enabled=False):
            return self.head(decoded.float(), images.shape[-2:])

    def head(self, decoded: torch.Tensor, size: torch.Size) -> torch.Tensor:
        """The segmentation head on decoder features, upsampled to ``size`` (H, W) -> (N, K, H, W)."""
        logits = self.model.segmentation_head(decoded)
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits

    def run_stride8_stage(self, low: torch.Tensor, *, frozen: bool) -> torch.Tensor:
        """This student's stride-8 stage on any (N, C1, H/4, W/4) tensor -> (N, C2, H/8, W/8).

        With ``frozen`` the stage's parameters get no gradient and its BatchNorm running
        statistics are not updated (docs/method.md, "HFD": the teacher's "Attn"/"MLP" only
        transforms the other student's features; foreign features must not move its stats).
        """
        stage = self.stride8_stage
        if not frozen:
            return stage(low)
        params = {k: v.detach() for k, v in stage.named_parameters()}
        buffers = {k: v.clone() for k, v in stage.named_buffers()}
        return torch.func.functional_call(stage, {**params, **buffers}, (low,))


# DeepLabV3+ at output stride 16 (Chen et al., ECCV 2018): smp's default (12, 24, 36) are the stride-8 rates.
ASPP_RATES_OS16 = (6, 12, 18)


def build_student(kind: str, encoder_name: str, num_classes: int, weights: Weights = None,
                  aspp_rates: tuple[int, ...] = ASPP_RATES_OS16) -> Student:
    """Build a CNN (DeepLabV3+, output stride 16) or ViT (SegFormer) student: the model its encoder's
    registration names (``cotrain.models.registry``).

    Args:
        kind: ``"cnn"`` or ``"vit"``.
        encoder_name: a registered encoder (see ``cotrain.models.encoder_names``).
        num_classes: K, number of output classes.
        weights: ``"imagenet"`` (smp's pretrained encoder, from ``cotrain.models.weights``' cache or the hub), ``None``
            (random init) or a path to a local state-dict file (encoder or whole model).
        aspp_rates: the CNN's three ASPP dilation rates (ignored for the ViT).
    """
    model = get_encoder_spec(encoder_name, kind).build(encoder_name, num_classes, tuple(aspp_rates))
    if weights == "imagenet":  # smp's own weights, read through the shared cache (cotrain.models.weights)
        from cotrain.models.weights import load_imagenet_encoder
        load_imagenet_encoder(model.encoder, encoder_name)
    elif weights is not None:
        load_local_weights(model, Path(weights))
    return Student(kind, encoder_name, model)


def load_local_weights(model: nn.Module, path: Path) -> None:
    """Load a local state dict into the encoder, or into the whole model if its keys say so."""
    if not path.is_file():
        raise ValueError(f"weights file {path} does not exist; pass 'imagenet', None or an existing state-dict file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files; its messages span lines
        raise ValueError(f"weights file {path} is not a readable state dict ({type(exc).__name__}; only tensors "
                         "and plain containers are read, pickled objects are refused)") from exc
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ValueError(f"weights file {path} holds a {type(state).__name__}, not a state dict")
    # ImageNet checkpoints carry a classifier the encoder does not have.
    encoder_state = {k: v for k, v in state.items() if not k.startswith(("head.", "classifier.", "fc."))}
    for target, candidate in ((model.encoder, encoder_state), (model, state)):
        if set(candidate) == set(target.state_dict()):
            target.load_state_dict(candidate)
            return
    raise ValueError(f"weights file {path} matches neither the {type(model.encoder).__name__} encoder "
                     f"nor the whole model (keys differ)")
