"""Optimisers and learning-rate schedules from plain config values (``optim:`` in conf/train.yaml)."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from nalu_suite.errors import ConfigError, check_choice, check_number

log = logging.getLogger("nalu_suite")

OPTIMIZERS = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}
SCHEDULES = ("none", "cosine")


#: the keys of ``optim`` that are ours; the others are the optimiser's keyword arguments
OWN_KEYS = ("name", "schedule", "final_lr_factor", "whiten_from", "whiten_until")


def check_optim(optim: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` (one line naming the key and what is valid) for a bad ``optim`` config:
    an unknown optimiser or schedule, a learning rate that is not a positive finite number (a negative one
    trains by gradient ascent), a ``final_lr_factor`` outside [0, 1], or keyword arguments the optimiser
    refuses (an unknown key, a bad ``betas``, a negative ``weight_decay``)."""
    name = optim.get("name", "adam")
    check_choice("optim.name", name, OPTIMIZERS)
    check_choice("optim.schedule", optim.get("schedule", "none"), SCHEDULES)
    check_number("optim.lr", optim.get("lr", 1e-3), 0, above=True)
    factor = check_number("optim.final_lr_factor", optim.get("final_lr_factor", 0.01), 0)
    if factor > 1:
        raise ConfigError(f"optim.final_lr_factor={factor:g} must be in [0, 1] (the final lr is factor * lr)")
    kwargs = {k: v for k, v in optim.items() if k not in OWN_KEYS}
    try:  # the optimiser checks its own arguments; try them on one dummy parameter
        OPTIMIZERS[name]([torch.zeros(1, requires_grad=True)], **kwargs)
    except (TypeError, ValueError) as err:
        given = ", ".join(f"optim.{k}={v!r}" for k, v in kwargs.items())
        raise ConfigError(f"{given}: torch.optim.{OPTIMIZERS[name].__name__} refuses them ({err})") from None
    start = optim.get("whiten_from")
    if start is not None:
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ConfigError(f"optim.whiten_from={start!r} must be null or a step >= 0")
        if optim.get("name", "adam") != "adam":
            raise ConfigError(f"optim.whiten_from={start} needs optim.name=adam, not {optim['name']!r}")
    stop = optim.get("whiten_until")
    if stop is not None and (
        isinstance(stop, bool) or not isinstance(stop, int) or start is None or stop <= start
    ):
        raise ConfigError(
            f"optim.whiten_until={stop!r} must be null or a step after optim.whiten_from={start!r}"
        )


def cosine_factor(step: int, total: int, floor: float) -> float:
    """Cosine decay from 1 to ``floor`` over ``total`` steps, then ``floor``."""
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(1, total)))


def whitening_pairs(named_params, whitening: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, ...]]:
    """``(parameter, P)`` for each of ``named_params`` that ``whitening`` (``Task.input_whitening``) names."""
    return [(p, whitening[n]) for n, p in named_params if n in whitening]


def build_optimizer(params, optim: dict[str, Any], max_steps: int, whitening=()):
    """The optimiser named by ``optim.name`` with its remaining keyword arguments, and its schedule
    (``schedule=cosine`` decays the learning rate to ``final_lr_factor`` times its start at ``max_steps``).
    Returns what ``LightningModule.configure_optimizers`` returns.

    ``optim.whiten_from=N`` uses :class:`~nalu_suite.whitened_adam.WhitenedAdam`, whose steps for each
    ``(weight, P)`` pair of ``whitening`` (from ``Task.input_whitening``) are whitened from step N on
    (until ``optim.whiten_until``, if set);
    with no such pair (e.g. a NALU first layer) it warns and builds plain Adam."""
    check_optim(optim)
    optim = dict(optim)
    name = optim.pop("name", "adam")
    schedule = optim.pop("schedule", "none")
    floor = float(optim.pop("final_lr_factor", 0.01))
    start = optim.pop("whiten_from", None)
    stop = optim.pop("whiten_until", None)
    pairs = list(whitening)
    if start is not None and not pairs:
        log.warning("optim.whiten_from=%s: the model has no input weights to whiten; plain Adam", start)
    if start is None or not pairs:
        optimizer = OPTIMIZERS[name](params, **optim)
    else:
        from nalu_suite.whitened_adam import WhitenedAdam

        whitened = {id(weight) for weight, _ in pairs}
        rest = [p for p in params if id(p) not in whitened]
        groups = [{"params": [w], "whiten": P} for w, P in pairs] + ([{"params": rest}] if rest else [])
        optimizer = WhitenedAdam(groups, start=start, stop=stop, **optim)
    if schedule == "none":
        return optimizer
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_factor(step, max_steps, floor)
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
