"""Image sequences and their targets for the MNIST tasks (Trask et al. 2018 §4.2).

A sequence is a row of indices into the image table, cut from back-to-back random permutations of a pool
(:func:`draw_sequences`); its target is the count of every digit (:func:`count_targets`, ``mnist_count``) or
the sum of the digits (:func:`sum_targets`, ``mnist_add``) or the running product after every image
(:func:`cumprod_targets`, ``mnist_prod``, Madsen & Johansen 2020 §4.2).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from nalu_suite.errors import ConfigError

NUM_DIGITS = 10


def draw_sequences(pool: torch.Tensor, n: int, length: int, g: torch.Generator) -> torch.Tensor:
    """``(n, length)`` image indices cut from back-to-back random permutations of ``pool``.

    Every image of the pool is used ``floor`` or ``ceil`` of ``n * length / len(pool)`` times.
    """
    if len(pool) == 0:
        raise ConfigError("cannot draw sequences from an empty image pool; check task.val_images")
    total = n * length
    rounds = math.ceil(total / len(pool))
    order = torch.cat([pool[torch.randperm(len(pool), generator=g)] for _ in range(rounds)])
    return order[:total].reshape(n, length)


def count_targets(labels: torch.Tensor) -> torch.Tensor:
    """``(n, T)`` digit labels -> ``(n, 10)`` counts of each digit."""
    return nn.functional.one_hot(labels, NUM_DIGITS).sum(dim=1).float()


def sum_targets(labels: torch.Tensor) -> torch.Tensor:
    """``(n, T)`` digit labels -> ``(n, 1)`` sums."""
    return labels.sum(dim=1, keepdim=True).float()


def cumprod_targets(labels: torch.Tensor) -> torch.Tensor:
    """``(n, T)`` digit labels -> ``(n, T)`` running products ``t_i = z_1 z_2 ... z_i`` (computed in float64:
    exact up to 2**53, i.e. every product of up to 16 digits, before the cast to float32)."""
    return labels.to(torch.float64).cumprod(dim=1).float()
