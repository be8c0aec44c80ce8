"""Recurrent simple-function task (Trask et al. 2018 §4.1, Table 1 right; as repaired in hoedt/stable-nalu).

Each sample is a sequence of ``T`` input vectors of size 10 on U[1, 2]; ``a`` and ``b`` are sums over time
of two fixed slices of the vector, the target is ``op(a, b)``, predicted from the last state. Training,
validation and the interpolation test use ``T = train_length`` (10). Extrapolation is in length, on the
same values: ``test/len<L>`` for every ``L`` of ``test_lengths`` (100, hoedt's success length) and
``test/extrap`` at ``T = extrap_length`` (1000, the NALU paper's length), which is also the success metric
and, as ``val_extrap``, the set that ``solved_at`` watches.

Model: ``unit.first`` as a recurrent cell, ``h_t = first([x_t, h_{t-1}])`` (an LSTM/GRU/RNN cell for
``unit=lstm`` etc., with ``rnn_hidden_size`` units), then ``unit.second`` on the final state.
``state_init=identity`` starts the cell's weights on its own state at the identity (IRNN, Le, Jaitly &
Hinton 2015): an accumulator's recurrent weights, which must end exactly at 1 on the diagonal.

Success at every length (hoedt's ``function_task_recurrent_mse_expectation.r``): MSE below that of the exact
recurrent solution with every input weight off by ε = 1e-5 (``1 - ε`` on the slices, ``ε`` elsewhere) and the
recurrent weights ``(1 - ε) I``, computed in float64 on the length's fixed set.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from nalu_suite.errors import ConfigError, check_choice
from nalu_suite.rng import generator
from nalu_suite.tasks.arithmetic import OPS, SUCCESS_EPS
from nalu_suite.tasks.base import ArithmeticModel
from nalu_suite.tasks.static_arith import StaticArithTask, draw_into, slice_sums
from nalu_suite.units import UNIT_NAMES, build_unit
from nalu_suite.units.cells import CELL_NAMES, CLASSIC_CELLS, UnitCell, build_cell, run_cell

#: ``task.state_init``: the unit's own init for the whole cell, or the identity on the state's weights
STATE_INITS = ("unit", "identity")


class RecurrentModel(ArithmeticModel):
    """A recurrent cell over the sequence, then an output layer on its last state."""

    def __init__(self, unit: dict[str, Any], input_size: int, hidden: int, state_init: str = "unit") -> None:
        super().__init__()
        try:
            self.cell = build_cell(unit["first"], input_size, hidden, **(unit.get("first_options") or {}))
            self.second = build_unit(unit["second"], hidden, 1, **(unit.get("second_options") or {}))
        except (TypeError, ValueError) as err:
            raise ConfigError(str(err)) from err
        if state_init == "identity":
            weight = getattr(getattr(self.cell, "unit", None), "W", None)
            if not isinstance(self.cell, UnitCell) or weight is None:
                raise ConfigError(
                    f"task.state_init=identity needs a unit cell with a weight matrix W (nau, nmu); "
                    f"unit.first={unit['first']!r} has none"
                )
            with torch.no_grad():
                weight[:, input_size:] = torch.eye(hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = run_cell(self.cell, x)
        return self.second(outputs[:, -1])


def recurrent_eps_threshold(step_sums: torch.Tensor, step_totals: torch.Tensor, op: str) -> float:
    """MSE of the exact recurrent solution with every weight off by ``SUCCESS_EPS`` (hoedt/stable-nalu).

    ``step_sums`` ``(n, T, 2)`` holds each step's slice sums ``(a_t, b_t)``, ``step_totals`` ``(n, T)`` the
    sum of each step's inputs. Input weights ``1 - eps`` on the slices and ``eps`` elsewhere give
    ``(1 - 2 eps) a_t + eps total_t`` per step; recurrent weights ``(1 - eps) I`` weigh step ``t`` of ``T``
    by ``(1 - eps)^(T - t)``.
    """
    step_sums, step_totals = step_sums.double(), step_totals.double()
    length = step_sums.shape[1]
    decay = (1 - SUCCESS_EPS) ** torch.arange(length - 1, -1, -1, dtype=torch.float64)
    perturbed = (1 - 2 * SUCCESS_EPS) * step_sums + SUCCESS_EPS * step_totals.unsqueeze(-1)
    a_eps, b_eps = torch.einsum("ntk,t->nk", perturbed, decay).unbind(-1)
    a, b = step_sums.sum(1).unbind(-1)
    return float((OPS[op](a_eps, b_eps) - OPS[op](a, b)).pow(2).mean())


def check_curriculum(stages, train_length: int) -> list[tuple[int, int]]:
    """``task.curriculum``: ``[[length, until_step], ...]``, training on sequences cut to ``length`` before
    step ``until_step`` (then on ``train_length``); lengths below ``train_length`` and steps increasing."""
    listed = isinstance(stages, (list, tuple))
    pairs = [tuple(pair) if isinstance(pair, (list, tuple)) else () for pair in (stages if listed else [])]
    values = [v for pair in pairs for v in pair]
    lengths, steps = [p[0] for p in pairs if p], [p[-1] for p in pairs if p]
    if not (
        listed
        and all(len(pair) == 2 for pair in pairs)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        and lengths == sorted(set(lengths))
        and steps == sorted(set(steps))
        and all(1 <= n < train_length for n in lengths)
        and all(n >= 1 for n in steps)
    ):
        raise ConfigError(
            f"task.curriculum={stages!r} must be a list of [length, until_step] pairs of integers, "
            f"lengths rising from 1 to below task.train_length={train_length} and steps rising from 1"
        )
    return [(int(length), int(until)) for length, until in pairs]


class RecurrentArithTask(StaticArithTask):
    name = "recurrent_arith"

    def __init__(self, task: dict[str, Any], unit: dict[str, Any], seed: int) -> None:
        for key in ("train_length", "extrap_length"):
            if int(task.get(key, 0)) < 1:
                raise ConfigError(f"task.{key}={task.get(key)} must be >= 1")
        lengths = task.get("test_lengths") or []
        if not isinstance(lengths, (list, tuple)) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in lengths
        ):
            raise ConfigError(f"task.test_lengths={lengths!r} must be a list of sequence lengths >= 1")
        check_choice("task.state_init", task.get("state_init", "unit"), STATE_INITS)
        self.curriculum = check_curriculum(task.get("curriculum") or [], int(task["train_length"]))
        super().__init__(task, unit, seed)
        self.extrap_eval_size = int(task.get("extrap_eval_size", 1000))
        self.lengths = {f"test/len{n}": int(n) for n in lengths}
        self.test_splits = ("test/interp", *self.lengths, "test/extrap")
        self._thresholds: dict[int, float] = {}
        # each curriculum stage's sequence length, then the whole sequence's; the current stage's index
        self.stage_lengths = [length for length, _ in self.curriculum] + [int(task["train_length"])]
        self._stage = 0

    def input_whitening(self) -> dict[str, torch.Tensor]:
        """An NAU cell's weight ``W`` reads ``[x_t, h_{t-1}]``: its steps are whitened for the inputs'
        columns (``P`` of the static task for ``x_t``) and scaled by ``task.state_step`` for the state's
        (``P = state_step * I``), so that the state's weights, which can stand in for an input weight's
        error at the training length but not beyond it, follow the input weights slowly. An NMU output
        layer's steps are scaled by ``task.second_step`` (the static task's)."""
        from nalu_suite.whitened_adam import uniform_whitening

        whitening = self.second_layer_whitening()
        if self.unit["first"] == "nau":
            lo, hi = (float(v) for v in self.cfg["interp_range"])
            n = self.input_size
            cell = float(self.cfg.get("state_step", 1.0)) * torch.eye(n + self.hidden_size)
            cell[:n, :n] = uniform_whitening(n, lo, hi)
            whitening["cell.unit.W"] = cell
        return whitening

    def check_units(self, unit: dict[str, Any]) -> None:
        check_choice("unit.first", unit.get("first"), CELL_NAMES)
        check_choice("unit.second", unit.get("second"), UNIT_NAMES)

    def sample(self, g, n, value_range, length: int | None = None, out=None):
        length = length or int(self.cfg["train_length"])
        x = torch.empty(n, length, self.input_size) if out is None else out[0]
        return draw_into(x, value_range, g), self.target(x, out=None if out is None else out[1])

    # --- the length curriculum -------------------------------------------------------------------
    def training_sample(self, g, n, out=None):
        """Training sequences of ``train_length``; with a ``task.curriculum`` of ``S`` stages the target
        has ``S + 1`` columns, the target of each stage's prefix and then of the whole sequence. The
        inputs are the same draws either way, so a curriculum run sees the sequences of a plain one."""
        if not self.curriculum:
            return super().training_sample(g, n, out=out)
        x = torch.empty(n, self.stage_lengths[-1], self.input_size) if out is None else out[0]
        draw_into(x, self.training_range, g)
        y = torch.cat([self.target(x[:, :prefix]) for prefix in self.stage_lengths], dim=-1)
        return x, y if out is None else out[1].copy_(y)

    def on_train_step(self, step: int) -> None:
        """Pick the curriculum stage of ``step``: the first whose ``until`` step lies ahead."""
        self._stage = next(
            (i for i, (_, until) in enumerate(self.curriculum) if step < until), len(self.curriculum)
        )

    def loss(self, model, batch) -> torch.Tensor:
        """MSE on the current stage's prefix of each training sequence and its target column (without a
        curriculum, or on a ``(n, 1)`` target: the task's plain loss)."""
        x, y = batch
        if y.shape[-1] == 1:
            return super().loss(model, batch)
        prefix = x[..., : self.stage_lengths[self._stage], :]
        return torch.nn.functional.mse_loss(model(prefix), y[..., self._stage : self._stage + 1])

    def operands(
        self, x: torch.Tensor, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``a``, ``b`` over the whole sequence: the slice sums of the inputs summed over time."""
        return super().operands(x.sum(dim=1, dtype=dtype), dtype)

    def length_of(self, split: str) -> int:
        """A split's sequence length: ``test/len<L>``: L; ``*extrap``: ``extrap_length``; else training's."""
        if split in self.lengths:
            return self.lengths[split]
        return int(self.cfg["extrap_length" if "extrap" in split else "train_length"])

    def fixed_set(self, split: str):
        length = self.length_of(split)
        if length == int(self.cfg["train_length"]) and "extrap" not in split and split not in self.lengths:
            return self.sample(generator(self.seed, "eval", split), self.eval_size, self.cfg["interp_range"])
        # validation-time and test-time extrapolation share one set per length
        key = "extrap" if "extrap" in split else f"len{length}"
        g = generator(self.seed, "eval", key)
        return self.sample(g, self.extrap_eval_size, self.cfg["extrap_range"], length)

    def threshold_at(self, split: str) -> float:
        """The success threshold (module docstring) on ``split``'s fixed set."""
        length = self.length_of(split)
        if length not in self._thresholds:
            x, _ = self.fixed_set(split)
            x = x.double()
            self._thresholds[length] = recurrent_eps_threshold(
                torch.stack(slice_sums(x, self.subsets), dim=-1), x.sum(-1), self.op
            )  # per-step slice sums (n, T, 2) and totals (n, T)
        return self._thresholds[length]

    def success_threshold(self) -> float:
        return self.threshold_at("test/extrap")

    def finalize_metrics(self, split: str, values: dict[str, float]) -> dict[str, float]:
        """The static task's metrics; ``test/len<L>`` adds ``success`` at its own length's threshold
        (``test/extrap/success`` is added with the other run results, ``results.add_success``)."""
        metrics = super().finalize_metrics(split, values)
        if split in self.lengths:
            mse = metrics["mse"]
            metrics["success"] = float(math.isfinite(mse) and mse < self.threshold_at(split))
        return metrics

    def build_model(self) -> RecurrentModel:
        hidden = int(self.cfg["rnn_hidden_size"]) if self.unit["first"] in CLASSIC_CELLS else self.hidden_size
        return RecurrentModel(self.unit, self.input_size, hidden, str(self.cfg.get("state_init", "unit")))

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
