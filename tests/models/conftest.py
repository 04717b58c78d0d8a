"""Students built once per session: MiT-B3..B5 take seconds each to initialise on CPU."""
from __future__ import annotations

from typing import Callable

import pytest
import torch

from cotrain.models import Student, build_student


@pytest.fixture(scope="session")
def student() -> Callable[..., Student]:
    """``student(kind, name, num_classes=3)``: a cached ``weights=None`` student (callers zero its grads)."""
    cache: dict[tuple[str, str, int], Student] = {}

    def get(kind: str, name: str, num_classes: int = 3) -> Student:
        key = (kind, name, num_classes)
        if key not in cache:
            torch.manual_seed(0)
            cache[key] = build_student(kind, name, num_classes, weights=None)
        return cache[key]

    return get
