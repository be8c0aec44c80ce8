"""Deterministic random streams derived from a run's seed."""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, *parts: int | str) -> int:
    """A 63-bit seed for the stream named ``parts`` of run ``seed``; stable across processes and machines."""
    digest = hashlib.sha256(repr((int(seed), *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, *parts: int | str) -> torch.Generator:
    """A CPU ``torch.Generator`` for the stream named ``parts`` of run ``seed``."""
    return torch.Generator().manual_seed(derive_seed(seed, *parts))


def seed_globals(seed: int) -> None:
    """What ``lightning.seed_everything`` seeds: Python's, NumPy's and torch's global generators."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
