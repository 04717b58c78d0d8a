"""Optimisers and poly schedules of paper §4.1: SGD for the CNN side, AdamW for the ViT side."""
from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LambdaLR

from cotrain.config import TrainConfig
from cotrain.pair import StudentPair


def poly_schedule(optimizer: torch.optim.Optimizer, total_steps: int, power: float) -> LambdaLR:
    """lr_t = lr_0 · (1 − t / T)^power, stepped once per iteration."""
    total = max(total_steps, 1)
    return LambdaLR(optimizer, lambda step: (1.0 - min(step, total) / total) ** power)


def build_optimizers(pair: StudentPair, cfg: TrainConfig, total_steps: int):
    """Return ({"cnn": SGD, "vit": AdamW}, {"cnn": poly, "vit": poly}); each gets only its side's parameters."""
    optimizers = {
        "cnn": torch.optim.SGD(pair.parameters_of("cnn"), lr=cfg.cnn_lr, momentum=cfg.cnn_momentum,
                               weight_decay=cfg.cnn_weight_decay),
        "vit": torch.optim.AdamW(pair.parameters_of("vit"), lr=cfg.vit_lr, weight_decay=cfg.vit_weight_decay),
    }
    schedulers = {
        "cnn": poly_schedule(optimizers["cnn"], total_steps, cfg.cnn_poly_power),
        "vit": poly_schedule(optimizers["vit"], total_steps, cfg.vit_poly_power),
    }
    return optimizers, schedulers
