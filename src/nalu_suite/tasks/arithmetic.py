"""What the static and recurrent arithmetic tasks share (Trask et al. 2018 §4.1, Madsen & Johansen 2020).

``a`` and ``b`` are sums over two fixed, overlapping, contiguous slices of the input, placed at a
random offset drawn once per seed (kevinzakka/NALU-pytorch#3: resampling the slices per sample makes
the task unlearnable). With 100 inputs, subset ratio 0.25 and overlap ratio 0.5:
``a = sum x[o:o+25]``, ``b = sum x[o+13:o+38]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from nalu_suite.errors import ConfigError, check_choice, check_range
from nalu_suite.rng import generator

OPS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "square": lambda a, b: a * a,
    "sqrt": lambda a, b: torch.sqrt(a),
}
OP_SYMBOLS = {
    "add": "a + b",
    "sub": "a - b",
    "mul": "a * b",
    "div": "a / b",
    "square": "a^2",
    "sqrt": "sqrt(a)",
}

#: Madsen & Johansen's success criterion: MSE below that of the exact solution with weights off by this.
SUCCESS_EPS = 1e-5


@dataclass(frozen=True)
class Subsets:
    """The two slices ``[a_start, a_stop)`` and ``[b_start, b_stop)`` of the input vector."""

    a_start: int
    a_stop: int
    b_start: int
    b_stop: int

    def masks(self, size: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.zeros(size, dtype=dtype)
        b = torch.zeros(size, dtype=dtype)
        a[self.a_start : self.a_stop] = 1
        b[self.b_start : self.b_stop] = 1
        return a, b


def draw_subsets(input_size: int, subset_ratio: float, overlap_ratio: float, seed: int) -> Subsets:
    """Slices of ``round(subset_ratio * input_size)`` elements overlapping by ``round(overlap_ratio * size)``,
    at an offset drawn from the seed."""
    size = round(subset_ratio * input_size)
    overlap = round(overlap_ratio * size)
    span = 2 * size - overlap
    if size < 1 or not 0 <= overlap <= size or span > input_size:
        raise ConfigError(
            f"task.subset_ratio={subset_ratio} and task.overlap_ratio={overlap_ratio} do not fit "
            f"task.input_size={input_size}: need 1 <= subset size and both subsets within the input"
        )
    offset = int(torch.randint(0, input_size - span + 1, (1,), generator=generator(seed, "subsets")))
    return Subsets(offset, offset + size, offset + size - overlap, offset + span)


def check_arith_config(cfg: dict) -> None:
    """Validate the values the arithmetic tasks share."""
    check_choice("task.op", cfg.get("op"), OPS)
    for key in ("interp_range", "extrap_range"):
        rng = cfg.get(key)
        if not isinstance(rng, (list, tuple)) or len(rng) != 2:
            raise ConfigError(f"task.{key}={rng!r} must be a pair [low, high]")
        check_range(f"task.{key}", float(rng[0]), float(rng[1]))
        if cfg["op"] == "sqrt" and float(rng[0]) < 0:
            raise ConfigError(f"task.{key}={list(rng)} has negative values; task.op=sqrt needs inputs >= 0")
    for key in ("input_size", "hidden_size"):
        if int(cfg.get(key, 1)) < 1:
            raise ConfigError(f"task.{key}={cfg.get(key)} must be >= 1")


def eps_threshold(x_sums: torch.Tensor, totals: torch.Tensor, op: str) -> float:
    """MSE of the exact solution whose first-layer weights are each off by ``SUCCESS_EPS``.

    ``x_sums`` holds the exact ``(a, b)`` per sample, ``totals`` the sum of all inputs: a weight of 1
    becomes ``1 - eps`` and a weight of 0 becomes ``eps``, so ``a_eps = (1 - 2 eps) a + eps total``.
    (Madsen & Johansen simulate this per task; with the default ranges and ``op=mul`` it is about 0.16.)
    """
    a, b = x_sums.double().unbind(-1)
    totals = totals.double()
    a_eps = (1 - 2 * SUCCESS_EPS) * a + SUCCESS_EPS * totals
    b_eps = (1 - 2 * SUCCESS_EPS) * b + SUCCESS_EPS * totals
    return float((OPS[op](a_eps, b_eps) - OPS[op](a, b)).pow(2).mean())
