"""Recurrent simple-function task (Trask et al. 2018 §4.1, Table 1 right; setup after stable-nalu).

Each sample is a sequence of ``T`` input vectors of size 10; ``a`` and ``b`` are sums over time of
two fixed slices of the vector, the target is ``op(a, b)``. Training and interpolation use
``T = train_length`` (10); extrapolation uses ``T = extrap_length`` (1000), so the sums grow 100x.

Model: ``unit.first`` as a recurrent cell, ``h_t = first([x_t, h_{t-1}])`` (an LSTM/GRU/RNN cell for
``unit=lstm`` etc., with ``rnn_hidden_size`` units), then ``unit.second`` on the final state.
"""

from __future__ import annotations

from typing import Any

import torch

from nalu_suite.errors import ConfigError, check_choice
from nalu_suite.rng import generator
from nalu_suite.tasks.arithmetic import eps_threshold
from nalu_suite.tasks.base import ArithmeticModel
from nalu_suite.tasks.static_arith import StaticArithTask, draw_into
from nalu_suite.units import UNIT_NAMES, build_unit
from nalu_suite.units.cells import CELL_NAMES, CLASSIC_CELLS, build_cell, run_cell


class RecurrentModel(ArithmeticModel):
    """A recurrent cell over the sequence, then an output layer on its last state."""

    def __init__(self, unit: dict[str, Any], input_size: int, hidden: int) -> None:
        super().__init__()
        try:
            self.cell = build_cell(unit["first"], input_size, hidden, **(unit.get("first_options") or {}))
            self.second = build_unit(unit["second"], hidden, 1, **(unit.get("second_options") or {}))
        except (TypeError, ValueError) as err:
            raise ConfigError(str(err)) from err

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = run_cell(self.cell, x)
        return self.second(outputs[:, -1])


class RecurrentArithTask(StaticArithTask):
    name = "recurrent_arith"

    def __init__(self, task: dict[str, Any], unit: dict[str, Any], seed: int) -> None:
        for key in ("train_length", "extrap_length"):
            if int(task.get(key, 0)) < 1:
                raise ConfigError(f"task.{key}={task.get(key)} must be >= 1")
        super().__init__(task, unit, seed)
        self.extrap_eval_size = int(task.get("extrap_eval_size", 1000))

    def input_whitening(self) -> dict[str, torch.Tensor]:
        """None: the recurrent cell's weights read its state as well as the inputs."""
        return {}

    def check_units(self, unit: dict[str, Any]) -> None:
        check_choice("unit.first", unit.get("first"), CELL_NAMES)
        check_choice("unit.second", unit.get("second"), UNIT_NAMES)

    def sample(self, g, n, value_range, length: int | None = None, out=None):
        length = length or int(self.cfg["train_length"])
        x = torch.empty(n, length, self.input_size) if out is None else out[0]
        return draw_into(x, value_range, g), self.target(x, out=None if out is None else out[1])

    def sums(self, x: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        return super().sums(x.sum(dim=1, dtype=dtype), dtype)

    def fixed_set(self, split: str):
        if "extrap" in split:
            g = generator(self.seed, "eval", "extrap")
            return self.sample(
                g, self.extrap_eval_size, self.cfg["extrap_range"], int(self.cfg["extrap_length"])
            )
        return self.sample(generator(self.seed, "eval", split), self.eval_size, self.cfg["interp_range"])

    def success_threshold(self) -> float:
        if self._threshold is None:
            x, _ = self.fixed_set("test/extrap")
            x = x.double()
            self._threshold = eps_threshold(self.sums(x), x.sum(dim=(1, 2)), self.op)
        return self._threshold

    def build_model(self) -> RecurrentModel:
        hidden = int(self.cfg["rnn_hidden_size"]) if self.unit["first"] in CLASSIC_CELLS else self.hidden_size
        return RecurrentModel(self.unit, self.input_size, hidden)

    def preview(self, n: int) -> list[dict[str, Any]]:
        x, y = self.sample(generator(self.seed, "preview"), n, self.cfg["interp_range"])
        s = self.subsets
        return [
            {
                "text": f"a = sum over t of x_t[{s.a_start}:{s.a_stop}] = {si[0]:.4f}, "
                f"b = sum over t of x_t[{s.b_start}:{s.b_stop}] = {si[1]:.4f}, target = {self.op}",
                "inputs": [[round(v, 4) for v in step] for step in xi.tolist()],
                "target": yi.item(),
            }
            for xi, si, yi in zip(x, self.sums(x), y, strict=True)
        ]
