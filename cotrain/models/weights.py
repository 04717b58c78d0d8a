"""ImageNet encoder weights through a cache folder, so that nodes without internet can use them.

On a machine with internet, fill a folder the compute nodes share (``cotrain/weights.py``, the CLI)::

    python -m cotrain.weights fetch --cnn mobilenet_v2 resnet50 --vit mit_b1 --cache /shared/cotrain-weights

and run with ``COTRAIN_WEIGHTS_CACHE=/shared/cotrain-weights`` (the Ray workers inherit it; on a
cluster set it where the nodes start): ``--weights imagenet`` then reads the cache and never
goes online for a cached encoder. Without the variable the Hugging Face cache is used.
The files are smp's own (``smp-hub/<encoder>.imagenet`` on the Hugging Face hub, pinned revisions).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import torch

from cotrain.errors import WeightsError
from cotrain.models.registry import ENCODERS

CACHE_ENV = "COTRAIN_WEIGHTS_CACHE"
FILES = ("config.json", "model.safetensors")


def cache_dir() -> Optional[str]:
    """The shared weights folder (``$COTRAIN_WEIGHTS_CACHE``), or None for the Hugging Face default."""
    return os.environ.get(CACHE_ENV) or None


def _source(encoder: str) -> tuple[str, str]:
    """smp's (repo id, pinned revision) of an encoder's ImageNet weights."""
    from segmentation_models_pytorch.encoders import encoders
    settings = encoders[encoder]["pretrained_settings"]["imagenet"]
    return settings["repo_id"], settings["revision"]


def weights_file(encoder: str, cache: Optional[str] = None, offline: bool = False) -> Path:
    """Path of the encoder's ``model.safetensors``: from the cache, else downloaded into it (unless ``offline``)."""
    from huggingface_hub import hf_hub_download
    repo, revision = _source(encoder)
    for local_only in (True, False) if not offline else (True,):
        try:
            paths = [hf_hub_download(repo, name, revision=revision, cache_dir=cache, local_files_only=local_only)
                     for name in FILES]
            return Path(paths[-1])
        except Exception as exc:  # offline, not cached, hub unreachable: many types, one meaning
            failure = exc
    where = cache or "the Hugging Face cache"
    kind = ENCODERS[encoder].kind
    raise WeightsError(
        f"weights=imagenet: could not get {encoder}'s ImageNet weights ({type(failure).__name__}); on a machine "
        f"with internet run `python -m cotrain.weights fetch --{kind} {encoder} --cache DIR` into a folder the "
        f"nodes share and set {CACHE_ENV}=DIR (now: {where})") from failure


def load_imagenet_encoder(encoder_module: torch.nn.Module, encoder: str) -> None:
    """Load the cached (or downloaded) ImageNet weights into an smp encoder built without weights."""
    from safetensors.torch import load_file
    encoder_module.load_state_dict(load_file(weights_file(encoder, cache_dir()), device="cpu"))


def fetch(encoders: Sequence[str], cache: str) -> list[Path]:
    """Download each encoder's weights into ``cache``; returns the weight files."""
    Path(cache).mkdir(parents=True, exist_ok=True)
    return [weights_file(name, cache) for name in encoders]
