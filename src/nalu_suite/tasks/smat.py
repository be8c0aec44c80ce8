"""Single Module Arithmetic Task, SMAT (Mistry, Farrahi & Hare, "A Primer for Neural Arithmetic Logic
Modules", JMLR 23(185), 2022, §6.5 and Appendix B Table 5; "SLTR" in ``bmistry4/nalm-benchmark``).

``y = a op b`` for ``op`` in + - x /, learnt by **one** module layer (``task.input_size -> 1``): the output
layer ``unit.second`` of the unit config (``unit=nau`` trains one NAU, ``unit=nac_mul`` one NAC•, ...).
``a`` and ``b`` are two of the ``input_size`` inputs (2: no redundancy; 10 or 100: 8 or 98 distractors),
at a position drawn once per seed (``tasks/arithmetic.draw_subsets`` with slices of one input).

The nine interpolation -> extrapolation ranges of the Primer, numbered as in its table (``RANGES``);
range 5 extrapolates to the union ``U[-6,-2] ∪ U[2,6]`` (``draw_intervals``). Training draws 128 fresh
samples per step from the interpolation range; validation (interpolation) and extrapolation sets of
``eval_size`` samples are fixed per range, the same for every seed (the Primer's fixed data-set seeds).

Model selection and success as in the Primer: the checkpoint with the lowest interpolation-validation
MSE (``monitor``), success = its extrapolation MSE below the simulated ε = 1e-4 threshold
(:func:`simulated_threshold`), ``solved_at`` = the first validation whose extrapolation MSE is below it.

``task.range`` is a range number 1..9, or a list of them / ``all`` to train several ranges as one
``replicas=R`` run: then seed ``s`` trains range ``ranges[(s // seeds_per_range) % len(ranges)]``
(``seed=0 replicas=225 task.range=all`` = 25 seeds of each range, seeds 0-24 on range 1, 25-49 on
range 2, ...). ``range_of_seed`` gives the mapping; ``nalu-bench smat`` splits the results by it.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from nalu_suite.errors import ConfigError, check_choice, check_positive_int
from nalu_suite.rng import generator
from nalu_suite.tasks.arithmetic import OP_SYMBOLS, OPS, draw_subsets
from nalu_suite.tasks.base import ArithmeticModel
from nalu_suite.tasks.extrapolation import ExtrapolationTask
from nalu_suite.tasks.static_arith import draw_into
from nalu_suite.units import UNIT_NAMES, build_unit

Intervals = tuple[tuple[float, float], ...]

#: the Primer's ranges, numbered as in its table: number -> (interpolation, extrapolation) intervals
RANGES: dict[int, tuple[Intervals, Intervals]] = {
    1: (((-20.0, -10.0),), ((-40.0, -20.0),)),
    2: (((-2.0, -1.0),), ((-6.0, -2.0),)),
    3: (((-1.2, -1.1),), ((-6.1, -1.2),)),
    4: (((-0.2, -0.1),), ((-2.0, -0.2),)),
    5: (((-2.0, 2.0),), ((-6.0, -2.0), (2.0, 6.0))),
    6: (((0.1, 0.2),), ((0.2, 2.0),)),
    7: (((1.0, 2.0),), ((2.0, 6.0),)),
    8: (((1.1, 1.2),), ((1.2, 6.0),)),
    9: (((10.0, 20.0),), ((20.0, 40.0),)),
}
SMAT_OPS = ("add", "sub", "mul", "div")
INPUT_SIZES = (2, 10, 100)
#: the Primer's ε of the simulated threshold (JMLR version, commit 53a51cc of nalm-benchmark)
THRESHOLD_EPS = 1e-4
THRESHOLD_SAMPLES = 1_000_000


def interval_text(intervals: Intervals) -> str:
    """``U[-6,-2] ∪ U[2,6]``."""
    return " ∪ ".join(f"U[{lo:g},{hi:g}]" for lo, hi in intervals)


def draw_intervals(x: torch.Tensor, intervals: Intervals, g: torch.Generator) -> torch.Tensor:
    """Fill ``x`` in place with draws uniform on the union of the disjoint ``intervals``.

    One ``U[0, total length)`` draw per element (``draw_into``: torch's values), mapped piecewise onto
    the intervals in order, so each interval is hit in proportion to its length (the Primer's mirrored
    range flips the sign of a ``U[2,6]`` draw with probability 1/2: the same distribution). A single
    interval is exactly ``draw_into``.
    """
    if len(intervals) == 1:
        return draw_into(x, intervals[0], g)
    lengths = [hi - lo for lo, hi in intervals]
    draw_into(x, (0.0, sum(lengths)), g)
    u = x.clone()
    start = 0.0
    for (lo, _), length in zip(intervals, lengths, strict=True):
        inside = (u >= start) & (u < start + length)
        x[inside] = u[inside] - start + lo
        start += length
    return x


def lift_zeros_(x: torch.Tensor, intervals: Intervals) -> torch.Tensor:
    """Replace exact zeros in ``x`` by half a grid step of its draw, in place (``÷`` only).

    A float32 draw ``lo + u (hi - lo)`` lies on a grid of ``2^-24 (hi - lo)``, so U[-2,2) gives exactly 0
    once in 2^24 draws: about once per run of 100,000 steps x 128 samples, and ``a / 0`` is infinite. The
    reference draws in float64 (``numpy``), where 0 never occurs and ``|b|`` is at times as small as the
    float32 grid step, with targets near 1e7 (finite). The grid point 0 stands for the grid cell
    ``[0, step)``; its midpoint is the same kind of value, so the divisor keeps the reference's behaviour.
    """
    step = sum(hi - lo for lo, hi in intervals) * 2.0**-24
    return x.masked_fill_(x == 0, step / 2)


def _perturbed_error(x: torch.Tensor, op: str, eps: float) -> torch.Tensor:
    """``(ŷ - y)^2`` per sample of the ε-perturbed ideal module on ``x`` (``a = x[:, 0]``, ``b = x[:, 1]``,
    the rest irrelevant), by the Primer's formulas (``generate_exp_thresholds.r``)."""
    a, b, rest = x[:, 0], x[:, 1], x[:, 2:]
    y = OPS[op](a, b)
    if op in ("add", "sub"):
        y_eps = y - eps * x.abs().sum(-1)
    else:
        irrelevant = (1 - eps * rest.abs()).prod(-1)
        scale = (1 - eps) ** 2 if op == "mul" else (1 - eps) / (1 + eps)
        y_eps = scale * y * irrelevant
    return (y_eps - y).pow(2)


@functools.cache
def simulated_threshold(
    op: str,
    intervals: Intervals,
    input_size: int,
    eps: float = THRESHOLD_EPS,
    samples: int = THRESHOLD_SAMPLES,
) -> float:
    """The Primer's success threshold: the MSE of the ideal module with every weight off by ``eps``
    (+/-: ``ŷ = y - ε Σ|x|``; x: ``(1-ε)² ab Π_irrelevant(1 - ε|x|)``; /: ``(1-ε)/(1+ε) (a/b) Π(...)``)
    over ``samples`` inputs uniform on the extrapolation ``intervals``, in float64, from a fixed generator
    (R's ``set.seed(1234)`` stream cannot be reproduced; the reference's recomputed table agrees to ~1%).
    """
    g = generator(1234, "smat threshold")
    total, done = 0.0, 0
    chunk = max(1, 4_000_000 // input_size)
    while done < samples:
        n = min(chunk, samples - done)
        x = draw_intervals(torch.empty(n, input_size, dtype=torch.float64), intervals, g)
        total += float(_perturbed_error(x, op, eps).sum())
        done += n
    return total / samples


def selected_ranges(value) -> tuple[int, ...]:
    """``task.range`` as range numbers: an int, a list of ints, or ``all``; one clear error otherwise."""
    choices = [*RANGES, "all", "a list of range numbers"]
    if value == "all":
        return tuple(RANGES)
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values or any(isinstance(v, bool) or v not in RANGES for v in values):
        raise ConfigError(f"task.range={value!r} is not valid; choose one of: {', '.join(map(str, choices))}")
    return tuple(int(v) for v in values)


def range_of_seed(task_cfg: dict[str, Any], seed: int) -> int:
    """The range number seed ``seed`` trains (module docstring)."""
    ranges = selected_ranges(task_cfg.get("range"))
    return ranges[(seed // int(task_cfg.get("seeds_per_range", 1))) % len(ranges)]


class SingleModuleModel(ArithmeticModel):
    """One module layer, ``unit.second`` (``in_features -> 1``), built with ``options`` (the task's per-module
    options, e.g. the NPU's ``l1_reduction``) updated by ``unit.second_options`` (the command line's)."""

    def __init__(self, unit: dict[str, Any], in_features: int, options: dict[str, Any] | None = None) -> None:
        super().__init__()
        options = {**(options or {}), **(unit.get("second_options") or {})}
        try:
            self.module = build_unit(unit["second"], in_features, 1, **options)
        except (TypeError, ValueError) as err:
            raise ConfigError(str(err)) from err

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


class SmatTask(ExtrapolationTask):
    name = "smat"

    def __init__(self, task: dict[str, Any], unit: dict[str, Any], seed: int) -> None:
        check_choice("task.op", task.get("op"), SMAT_OPS)
        check_choice("task.input_size", task.get("input_size"), INPUT_SIZES)
        check_positive_int("task.seeds_per_range", task.get("seeds_per_range", 1))
        check_choice("unit.second", unit.get("second"), UNIT_NAMES)
        super().__init__(task, unit, seed)
        self.op = task["op"]
        self.input_size = int(task["input_size"])
        self.eval_size = check_positive_int("task.eval_size", task.get("eval_size", 10_000))
        self.range = range_of_seed(task, seed)
        self.interp, self.extrap = RANGES[self.range]
        self.subsets = draw_subsets(self.input_size, 1 / self.input_size, 0.0, seed)

    # --- data --------------------------------------------------------------------------------
    def sample(
        self, g: torch.Generator, n: int, intervals: Intervals, out: tuple[torch.Tensor, ...] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` inputs uniform on ``intervals`` and their targets, written into ``out`` if given."""
        x = torch.empty(n, self.input_size) if out is None else out[0]
        draw_intervals(x, intervals, g)
        if self.op == "div":
            lift_zeros_(x, intervals)
        return x, self.target(x, out=None if out is None else out[1])

    def operands(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[..., self.subsets.a_start], x[..., self.subsets.b_start]

    def target(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``(n, 1)``: ``a op b`` in float64, rounded once to ``x``'s dtype."""
        a, b = (v.double() for v in self.operands(x))
        y = OPS[self.op](a, b).to(x.dtype).unsqueeze(-1)
        return y if out is None else out.copy_(y)

    def fixed_set(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The range's fixed sets, the same inputs for every seed: ``val`` and ``test/interp`` interpolate,
        ``*extrap`` (validation and test share it) extrapolates."""
        extrap = "extrap" in split
        key = "extrap" if extrap else split
        g = generator(0, "smat eval", key, self.range, self.input_size, self.eval_size)
        return self.sample(g, self.eval_size, self.extrap if extrap else self.interp)

    @property
    def training_range(self) -> Intervals:
        return self.interp

    def preview(self, n: int) -> list[dict[str, Any]]:
        x, y = self.sample(generator(self.seed, "preview"), n, self.interp)
        i, j = self.subsets.a_start, self.subsets.b_start
        return [
            {
                "text": f"range {self.range}: {interval_text(self.interp)} -> {interval_text(self.extrap)}, "
                f"a = x[{i}], b = x[{j}], target = {OP_SYMBOLS[self.op]}",
                "inputs": [round(v, 4) for v in xi.tolist()],
                "target": yi.item(),
            }
            for xi, yi in zip(x, y, strict=True)
        ]

    # --- model and metrics -------------------------------------------------------------------
    def build_model(self) -> SingleModuleModel:
        module = (self.cfg.get("modules") or {}).get(self.unit.get("name")) or {}
        return SingleModuleModel(self.unit, self.input_size, module.get("options"))

    def success_threshold(self) -> float:
        """``task.threshold`` where set (a fixed MSE, e.g. the Division paper's 1e-5), else simulated."""
        if self.cfg.get("threshold") is not None:
            return float(self.cfg["threshold"])
        eps = float(self.cfg.get("threshold_eps", THRESHOLD_EPS))
        samples = int(self.cfg.get("threshold_samples", THRESHOLD_SAMPLES))
        return simulated_threshold(self.op, self.extrap, self.input_size, eps, samples)

    def finalize_metrics(self, split: str, values: dict[str, float]) -> dict[str, float]:
        return {"mse": values["mse"], "mae": values["mae"]}


class DivisionTask(SmatTask):
    """The Division paper's benchmark (Mistry, Li, Zhang & Hare 2021): SMAT with its settings
    (``conf/task/division.yaml``: ÷, input 10, fixed 1e-5 threshold, 100k steps)."""

    name = "division"


__all__ = [
    "RANGES",
    "DivisionTask",
    "SMAT_OPS",
    "SmatTask",
    "draw_intervals",
    "interval_text",
    "range_of_seed",
    "simulated_threshold",
]
