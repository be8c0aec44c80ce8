"""Static simple-function task (Trask et al. 2018 §4.1, Table 1; protocol of Madsen & Johansen 2020).

Input ``x ~ U[interp_range]^100`` (extrapolation: ``U[extrap_range]^100``), target ``op(a, b)`` with
``a``, ``b`` sums over two fixed slices (see ``tasks/arithmetic.py``). Model: ``unit.first`` (100 ->
hidden) then ``unit.second`` (hidden -> 1); the paper stacks two NALUs, Madsen & Johansen use NAU then NMU.

Metrics per split: ``mse``, the paper's ``normalized`` error (100 = the same architecture at random
initialisation, averaged over ``baseline_draws`` draws; 0 = perfect) and, on extrapolation, ``success``
(MSE below the ε = 1e-5 threshold) with ``solved_at``, the first validation step that met it.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from nalu_suite import fast_uniform
from nalu_suite.errors import ConfigError, check_choice
from nalu_suite.rng import generator
from nalu_suite.tasks.arithmetic import OP_SYMBOLS, OPS, check_arith_config, draw_subsets, eps_threshold
from nalu_suite.tasks.base import ArithmeticModel
from nalu_suite.tasks.extrapolation import ExtrapolationTask
from nalu_suite.units import UNIT_NAMES, build_unit


def check_unit_layers(unit: dict[str, Any], allowed=UNIT_NAMES) -> None:
    """Both layer names must be registered units."""
    for layer in ("first", "second"):
        check_choice(f"unit.{layer}", unit.get(layer), allowed)


class TwoLayerModel(ArithmeticModel):
    """``second(first(x))``: the two stacked arithmetic layers of the simple-function tasks;
    ``positive_inputs``: every ``x`` is > 0 (the first unit's ``positive_inputs``, ``units/base.py``)."""

    def __init__(
        self,
        unit: dict[str, Any],
        in_features: int,
        hidden: int,
        out_features: int = 1,
        positive_inputs: bool = False,
    ) -> None:
        super().__init__()
        try:
            self.first = build_unit(unit["first"], in_features, hidden, **(unit.get("first_options") or {}))
            self.second = build_unit(
                unit["second"], hidden, out_features, **(unit.get("second_options") or {})
            )
        except (TypeError, ValueError) as err:
            raise ConfigError(str(err)) from err
        self.first.positive_inputs = positive_inputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


def draw_into(x: torch.Tensor, value_range, g: torch.Generator) -> torch.Tensor:
    """Fill ``x`` with ``U[value_range]`` draws from ``g``, in place: ``x.uniform_(*value_range,
    generator=g)``, in the compiled kernel of ``fast_uniform`` where it is available (the same values)."""
    return fast_uniform.uniform_(x, value_range[0], value_range[1], g)


def slice_sums(
    x: torch.Tensor, subsets, dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sums of the last dimension's two ``subsets`` slices (``a``, ``b``), accumulated in ``dtype``."""
    a = x[..., subsets.a_start : subsets.a_stop].sum(-1, dtype=dtype)
    return a, x[..., subsets.b_start : subsets.b_stop].sum(-1, dtype=dtype)


class StaticArithTask(ExtrapolationTask):
    name = "static_arith"

    def __init__(self, task: dict[str, Any], unit: dict[str, Any], seed: int) -> None:
        check_arith_config(task)
        super().__init__(task, unit, seed)
        self.check_units(unit)
        step = task.get("second_step", 1.0)
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0 < step <= 1:
            raise ConfigError(f"task.second_step={step!r} must be a number in (0, 1]")
        self.second_step = float(step)
        self.op = task["op"]
        self.input_size = int(task["input_size"])
        self.hidden_size = int(task["hidden_size"])
        self.eval_size = int(task.get("eval_size", 10_000))
        self.subsets = draw_subsets(
            self.input_size, float(task["subset_ratio"]), float(task["overlap_ratio"]), seed
        )
        self._baseline: dict[str, float] = {}
        self._threshold: float | None = None

    def check_units(self, unit: dict[str, Any]) -> None:
        check_unit_layers(unit)

    # --- data --------------------------------------------------------------------------------
    def sample(
        self, g: torch.Generator, n: int, value_range, out: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` inputs ``x ~ U[value_range]^input_size`` and their targets, written into ``out`` if given."""
        x = torch.empty(n, self.input_size) if out is None else out[0]
        return draw_into(x, value_range, g), self.target(x, out=None if out is None else out[1])

    def operands(
        self, x: torch.Tensor, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``a``, ``b``: the sums of each input's two slices (accumulated in ``dtype``)."""
        return slice_sums(x, self.subsets, dtype)

    def sums(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``(..., 2)``: the operands ``a``, ``b`` stacked."""
        return torch.stack(self.operands(x, dtype), dim=-1)

    def target(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``(n, 1)``: ``op(a, b)``, computed in float64 and rounded once to ``x``'s dtype (``copy_`` rounds
        as ``to`` does: the data process draws a training batch with two kernels fewer)."""
        y = OPS[self.op](*self.operands(x, dtype=torch.float64)).unsqueeze(-1)
        return y.to(x.dtype) if out is None else out.copy_(y)

    @staticmethod
    def set_key(split: str) -> str:
        """The evaluation set a split reads: validation-time and test-time extrapolation share one set."""
        return "extrap" if "extrap" in split else split

    def fixed_set(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed evaluation sets: ``val`` and ``test/interp`` interpolate, ``*extrap`` extrapolate."""
        key = self.set_key(split)
        value_range = self.cfg["extrap_range"] if key == "extrap" else self.cfg["interp_range"]
        return self.sample(generator(self.seed, "eval", key), self.eval_size, value_range)

    @property
    def training_range(self):
        return self.cfg["interp_range"]

    def preview(self, n: int) -> list[dict[str, Any]]:
        x, y = self.sample(generator(self.seed, "preview"), n, self.cfg["interp_range"])
        s = self.subsets
        rows = []
        for xi, si, yi in zip(x, self.sums(x), y, strict=True):
            rows.append(
                {
                    "text": f"a = sum(x[{s.a_start}:{s.a_stop}]) = {si[0]:.4f}, "
                    f"b = sum(x[{s.b_start}:{s.b_stop}]) = {si[1]:.4f}, target = {OP_SYMBOLS[self.op]}",
                    "inputs": [round(v, 4) for v in xi.tolist()],
                    "target": yi.item(),
                }
            )
        return rows

    # --- model and metrics -------------------------------------------------------------------
    def build_model(self) -> TwoLayerModel:
        """The two-layer model; its inputs are positive when both ranges start above 0, as by default."""
        positive = all(float(self.cfg[key][0]) > 0 for key in ("interp_range", "extrap_range"))
        return TwoLayerModel(self.unit, self.input_size, self.hidden_size, positive_inputs=positive)

    #: first-layer units whose weight multiplies the inputs directly, and that weight's name
    WHITENABLE = {"nau": "first.W", "linear": "first.weight"}

    def input_whitening(self) -> dict[str, torch.Tensor]:
        from nalu_suite.whitened_adam import uniform_whitening

        whitening = self.second_layer_whitening()
        name = self.WHITENABLE.get(self.unit["first"])
        if name is not None:
            lo, hi = (float(v) for v in self.cfg["interp_range"])
            whitening[name] = uniform_whitening(self.input_size, lo, hi)
        return whitening

    def second_layer_whitening(self) -> dict[str, torch.Tensor]:
        """``P = second_step * I`` for an NMU output layer's ``W``: with whitened Adam (``optim.whiten_from``)
        its steps are ``task.second_step`` times Adam's. Two time scales: an NMU gate ``W_j`` goes to 0
        ("ignore ``h_j``") whenever ``h_j < 1`` shrinks the product, and at the start every ``h_j`` is near
        0 (NAU init of mean 0); a gate that reaches 0 before the first layer has lifted its ``h_j`` above 1
        never receives a gradient again (the 10-parameter task's trap, docs/benchmarks.md)."""
        if self.second_step == 1.0 or self.unit["second"] != "nmu":
            return {}
        return {"second.W": self.second_step * torch.eye(self.hidden_size)}

    def success_threshold(self) -> float:
        if self._threshold is None:
            x, _ = self.fixed_set("test/extrap")
            self._threshold = eps_threshold(self.sums(x.double()), x.double().sum(-1), self.op)
        return self._threshold

    def baseline_models(self, split: str) -> list[TwoLayerModel]:
        """The random baseline's ``baseline_draws`` fresh models (the global generator seeded with
        10,000 + draw, so the same for every seed), in evaluation mode as the error is measured; none once
        ``split``'s set has its baseline (the two extrapolation splits share one)."""
        if self.set_key(split) in self._baseline:
            return []
        models = []
        with torch.random.fork_rng():
            for draw in range(int(self.cfg.get("baseline_draws", 10))):
                torch.manual_seed(10_000 + draw)
                models.append(self.build_model().eval())
        return models

    def record_baseline(self, split: str, mses: list[float]) -> None:
        """The baseline of ``split``'s set: the mean of the draws' finite MSEs (inf if none is finite)."""
        finite = [mse for mse in mses if math.isfinite(mse)]
        self._baseline[self.set_key(split)] = sum(finite) / len(finite) if finite else math.inf

    def random_baseline_mse(self, split: str) -> float:
        """MSE of freshly initialised models of this architecture (``baseline_models``), averaged over
        the draws; computed once per evaluation set, here unless an engine recorded it in bulk."""
        models = self.baseline_models(split)
        if models:
            x, y = self.fixed_set(split)
            with torch.no_grad():
                mses = [float((model(x).double() - y.double()).pow(2).mean()) for model in models]
            self.record_baseline(split, mses)
        return self._baseline[self.set_key(split)]

    def finalize_metrics(self, split: str, values: dict[str, float]) -> dict[str, float]:
        baseline = self.random_baseline_mse(split)
        normalized = 100.0 * values["mse"] / baseline if 0 < baseline < float("inf") else float("nan")
        return {"mse": values["mse"], "mae": values["mae"], "normalized": normalized}
