"""Sequential MNIST product (Madsen & Johansen, "Neural Arithmetic Units", ICLR 2020, §4.2): ``mnist_prod``.

A sample is a sequence of MNIST images of the digits 1-9 (``task.digits``); the target is the running
product after every image, ``t_i = z_1 ... z_i`` (:func:`~.sequences.cumprod_targets`), and the loss is the
MSE over all steps. Training sequences have length 2 (``train_length``), the tests lengths 1..20.

**Model** (:class:`~.model.DigitSequenceModel` with ``cumulative=True``): the CNN gives every image one
scalar ``z`` (``digit_value: regression``, the PyTorch-example CNN with one output), and a one-number
accumulator ``h_t = cell([z_t, h_{t-1}])``, ``h_0 = 1``, is the prediction at every step, as in Madsen &
Johansen's network (no readout layer). The cell is the unit's multiplicative layer, ``unit.second``
(``unit=nmu``: NMU, ``unit=nac_mul``: NAC•, ``unit=nalu``: NALU); ``task.cell`` names another unit. A
classic cell (``unit=lstm``, ...) keeps ``unit.first`` as the cell and ``unit.second`` as its readout.
``task.core=solved`` is the reference model: no learned core, the exact running product of the CNN's
outputs (Madsen & Johansen's ``--model-simplification solved-accumulator``).

**R_z** (``task.regularizer_z``, Madsen & Johansen's ``--regualizer-z``): for an NMU cell the loss adds
``R_z = mean_i (1 - W_i) (1 - x̄_i)^2``, ``x̄`` the mean of the cell's inputs ``[z_t, h_{t-1}]`` over the
batch and the steps. It pushes a weight to 1 unless its input averages 1, which rules out degenerate
solutions such as ``W = 0.1, z = 81`` for the digit 9 (``0.1 * 81 + 0.9 = 9``).

**Success** (``test/len<L>/success``): the test MSE over all steps of the length-``L`` sequences below
``task.thresholds[L]``. Madsen & Johansen's threshold at each length is ``mean + t_{0.99, n-1} sd / sqrt(n)``
of the test MSEs of ``n`` reference runs (:func:`reference_thresholds`); here the reference runs are
``task.core=solved`` trained with the same recipe, seeds 0-2 (``docs/benchmarks.md``).
``python -m nalu_suite.tasks.mnist.product RUN_DIR...`` prints the thresholds of reference runs.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import torch

from nalu_suite.errors import ConfigError, check_choice, check_number
from nalu_suite.stats import student_t_quantile
from nalu_suite.tasks.mnist.model import DigitSequenceModel
from nalu_suite.tasks.mnist.sequences import cumprod_targets
from nalu_suite.tasks.mnist.task import MnistSequenceTask
from nalu_suite.units import UNIT_NAMES, unit_options
from nalu_suite.units.cells import CLASSIC_CELLS
from nalu_suite.units.nmu import NMU

#: ``max_exponent`` of a multiplicative cell: 9**20 = e**43.9 must not be clipped (float32 ends at e**88.7)
CELL_MAX_EXPONENT = 60.0
#: ``task.digit_value``: the CNN's one output (the paper's runs), or the expectation of its softmax over the
#: digits (Madsen & Johansen's ``--softmax-transform``)
DIGIT_VALUES = ("regression", "expectation")
#: the one-sided level of Madsen & Johansen's threshold interval (``alpha = 0.01`` in their R export)
ALPHA = 0.01


def reference_thresholds(mse: list[list[float]], alpha: float = ALPHA) -> list[float]:
    """Per length, ``mean + t_{1 - alpha, n - 1} * sd / sqrt(n)`` of ``mse[run][length]`` over ``n >= 2`` runs
    (Madsen & Johansen's success threshold, ``export/sequential_mnist_prod_long.r``)."""
    values = torch.tensor(mse, dtype=torch.float64)
    if values.dim() != 2 or values.shape[0] < 2:
        raise ConfigError(f"reference thresholds need the MSEs of at least 2 runs, got {values.shape[0]}")
    n = values.shape[0]
    spread = student_t_quantile(1 - alpha, n - 1) * values.std(dim=0) / math.sqrt(n)
    return (values.mean(dim=0) + spread).tolist()


def nmu_z_regularizer(weight: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``R_z = mean((1 - W) (1 - x̄)^2)`` of an NMU's weight ``(out, in)`` and inputs ``(..., in)``."""
    mean = inputs.reshape(-1, inputs.shape[-1]).mean(dim=0)
    return ((1 - weight) * (1 - mean) ** 2).mean()


class MnistProdTask(MnistSequenceTask):
    """The running product of MNIST digits 1-9 (module docstring)."""

    name = "mnist_prod"
    out_features = 1
    monitor = "val/mse"

    def __init__(self, task: dict[str, Any], unit: dict[str, Any], seed: int) -> None:
        task = {"digits": list(range(1, 10))} | dict(task)
        super().__init__(task, unit, seed)
        if self.core == "joint":
            raise ConfigError("task.core='joint' is not valid for mnist_prod; choose one of: shared, solved")
        self.digit_value = str(task.get("digit_value", "regression"))
        check_choice("task.digit_value", self.digit_value, DIGIT_VALUES)
        self.regularizer_z = check_number("task.regularizer_z", task.get("regularizer_z", 0.0), 0.0)
        self.unit = self._core_unit(unit, task.get("cell", "auto"))
        if self.unit["first"] not in CLASSIC_CELLS and self.hidden_size != 1:
            raise ConfigError(
                f"task.hidden_size={self.hidden_size} must be 1: without a readout the state is the output"
            )
        thresholds = task.get("thresholds")
        if thresholds is not None:
            thresholds = [float(x) for x in thresholds]
            if len(thresholds) != len(self.test_lengths):
                raise ConfigError(
                    f"task.thresholds has {len(thresholds)} values but task.test_lengths has "
                    f"{len(self.test_lengths)}: give one MSE threshold per test length (or null)"
                )
        self.thresholds = dict(zip(self.test_lengths, thresholds, strict=True)) if thresholds else None
        self.success_metric = f"test/len{self.test_lengths[-1]}/mse" if self.thresholds else None

    def _core_unit(self, unit: dict[str, Any], cell: str) -> dict[str, Any]:
        """The unit config the model is built from: ``first`` the cell, ``second`` the readout (if any)."""
        if unit["first"] in CLASSIC_CELLS:
            return dict(unit)
        cell = unit["second"] if cell == "auto" else cell
        check_choice("task.cell", cell, ("auto", *UNIT_NAMES))
        options = dict(unit.get("second_options") or {}) if cell == unit["second"] else {}
        if "max_exponent" in unit_options(cell):
            options.setdefault("max_exponent", CELL_MAX_EXPONENT)
        return {
            "name": unit.get("name", cell),
            "first": cell,
            "first_options": options | {"initial_value": 1.0},  # h_0 = 1, the empty product
            "second": cell,  # unused: no readout
            "second_options": {},
        }

    def model_options(self) -> dict[str, Any]:
        classic = self.unit["first"] in CLASSIC_CELLS
        return {"cumulative": True, "readout": classic, "solved_op": "prod"}

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        return cumprod_targets(labels)

    def loss(self, model: DigitSequenceModel, batch) -> torch.Tensor:
        """MSE over all steps, plus ``regularizer_z * R_z`` for an NMU cell (module docstring)."""
        indices, target = batch
        features = model.digit_features(self.images_on(indices.device)[indices])  # (B, T, 1)
        pred = model.accumulate(features)  # (B, T)
        loss = torch.nn.functional.mse_loss(pred, target)
        cell = getattr(model.cell, "unit", None)
        if self.regularizer_z and isinstance(cell, NMU):
            previous = torch.cat([torch.ones_like(pred[:, :1]), pred[:, :-1]], dim=1)  # h_{t-1}
            inputs = torch.stack([features[..., 0], previous], dim=-1)  # the cell's [z_t, h_{t-1}]
            loss = loss + self.regularizer_z * nmu_z_regularizer(cell.weight, inputs)
        return loss

    def success_threshold(self) -> float | None:
        return self.thresholds[self.test_lengths[-1]] if self.thresholds else None

    def finalize_metrics(self, split: str, values: dict[str, float]) -> dict[str, float]:
        """The MNIST metrics over all steps; ``test/len<L>`` adds ``success`` against its own threshold."""
        metrics = super().finalize_metrics(split, values)
        if self.thresholds and split.startswith("test/len"):
            mse = metrics["mse"]
            limit = self.thresholds[int(split.removeprefix("test/len"))]
            metrics["success"] = float(math.isfinite(mse) and mse < limit)
        return metrics


def main(argv: list[str]) -> int:
    """Print ``task.thresholds`` from the ``results.json`` of reference runs (``task.core=solved``)."""
    if len(argv) < 2:
        print("usage: python -m nalu_suite.tasks.mnist.product RUN_DIR RUN_DIR [...]", file=sys.stderr)
        return 2
    rows = [json.loads((Path(d) / "results.json").read_text()) for d in argv]
    lengths = sorted(int(k.split("/")[1].removeprefix("len")) for k in rows[0] if k.endswith("/mse")
                     and k.startswith("test/len"))  # fmt: skip
    values = [[row[f"test/len{n}/mse"] for n in lengths] for row in rows]
    thresholds = reference_thresholds(values)
    print(f"test_lengths: {lengths}")
    print(f"thresholds: [{', '.join(f'{x:.4g}' for x in thresholds)}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
