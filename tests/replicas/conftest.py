"""Shared fixtures of the replica engine's tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def every_step_path():
    """Overrides of a short NMU ``mul`` run that takes every code path of a step: the regulariser ramp
    (``reg``: its start and end step), gradient clipping by norm and the cosine schedule, validating every
    ``val_every`` steps; a learning rate high enough makes any numerical difference grow visibly."""

    def overrides(steps: int, val_every: int, lr: float, reg: tuple[int, int]) -> list[str]:
        return [
            "task=static_arith",
            "task.op=mul",
            "unit=nmu",
            "task.eval_size=200",
            "task.baseline_draws=1",
            "batch_size=32",
            f"trainer.max_steps={steps}",
            f"trainer.val_check_interval={val_every}",
            f"optim.lr={lr}",
            "optim.schedule=cosine",
            "trainer.gradient_clip_val=1.0",
            "regularizer.weight=1.0",
            f"regularizer.start={reg[0]}",
            f"regularizer.end={reg[1]}",
        ]

    return overrides
