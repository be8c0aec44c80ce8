"""Optimisers and learning-rate schedules from plain config values (``optim:`` in conf/train.yaml)."""

from __future__ import annotations

import math
from typing import Any

import torch

from nalu_suite.errors import check_choice

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
SCHEDULES = ("none", "cosine")


def check_optim(optim: dict[str, Any]) -> None:
    check_choice("optim.name", optim.get("name", "adam"), OPTIMIZERS)
    check_choice("optim.schedule", optim.get("schedule", "none"), SCHEDULES)


def cosine_factor(step: int, total: int, floor: float) -> float:
    """Cosine decay from 1 to ``floor`` over ``total`` steps, then ``floor``."""
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(1, total)))


def build_optimizer(params, optim: dict[str, Any], max_steps: int):
    """The optimiser named by ``optim.name`` with its remaining keyword arguments, and its schedule
    (``schedule=cosine`` decays the learning rate to ``final_lr_factor`` times its start at ``max_steps``).
    Returns what ``LightningModule.configure_optimizers`` returns."""
    check_optim(optim)
    optim = dict(optim)
    name = optim.pop("name", "adam")
    schedule = optim.pop("schedule", "none")
    floor = float(optim.pop("final_lr_factor", 0.01))
    optimizer = OPTIMIZERS[name](params, **optim)
    if schedule == "none":
        return optimizer
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_factor(step, max_steps, floor)
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
