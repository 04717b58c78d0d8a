"""Reading a saved run: the checkpoint file, safely, and one student out of it (writing is the engine's).

Here, below the methods, so that offline KD's teachers load without the methods reaching up into the engine.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cotrain.errors import CheckpointError
from cotrain.models.students import ASPP_RATES_OS16, Student, build_student
from cotrain.options import parse_rates

CHECKPOINT_FILE = "checkpoint.pt"


def load_state(path: Path) -> dict[str, Any]:
    """Read a checkpoint file safely (no pickle beyond tensors and plain containers)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, wrong format...
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}); "
                              "delete it to restart from the previous one") from exc
    if not isinstance(state, dict) or "pair" not in state or "config" not in state:
        raise CheckpointError(f"checkpoint {path} is not a cotrain checkpoint (no 'pair'/'config' entries)")
    return state


def load_student(path: Path, side: str) -> tuple[Student, int]:
    """The ``side`` (``cnn`` or ``vit``) student a checkpoint holds, with its saved weights, and its K."""
    state = load_state(path)
    return student_from_state(state, side), state["num_classes"]


def student_from_state(state: dict[str, Any], side: str) -> Student:
    """The ``side`` student of a checkpoint read by ``load_state``, with its saved weights."""
    config, num_classes = state["config"], state["num_classes"]
    rates = parse_rates(config.get("aspp_rates") or "") or ASPP_RATES_OS16
    student = build_student(side, config[side], num_classes, None, rates)
    student.load_state_dict(side_state(state, side))
    return student


def side_state(state: dict[str, Any], side: str) -> dict[str, Any]:
    """The state dict of one student (``cnn`` or ``vit``) inside a checkpoint's pair."""
    prefix = f"{side}."
    return {k[len(prefix):]: v for k, v in state["pair"].items() if k.startswith(prefix)}


def check_init_source(state: dict[str, Any], path: str, cnn: str, vit: str, num_classes: int,
                      aspp_rates: str) -> None:
    """A checkpoint that ``init_from`` names must hold the run's students: same encoders, classes, ASPP rates."""
    saved = state["config"]
    wanted = {"cnn": cnn, "vit": vit, "aspp_rates": aspp_rates}
    for key, value in wanted.items():
        if saved.get(key, value) != value:
            raise CheckpointError(f"init_from={path} holds {key}={saved.get(key)!r}, the run has {key}={value!r}")
    if state["num_classes"] != num_classes:
        raise CheckpointError(f"init_from={path} has num_classes={state['num_classes']}, the run has {num_classes}")


def load_students_into(cnn: Student, vit: Student, state: dict[str, Any]) -> None:
    """Copy a checkpoint's two students into ``cnn`` and ``vit`` (a method's own modules are left as built)."""
    for side, student in (("cnn", cnn), ("vit", vit)):
        student.load_state_dict(side_state(state, side))
