"""The contract between a task and the generic training system.

A *task* turns plain config values into a model, data and metrics. The Lightning system
(``nalu_suite.system.ArithmeticSystem``) owns the loop, the loss schedule and the logging; the
task owns everything specific to its data. Tasks are plain Python objects (no Lightning import at
module level), so ``nalu-preview`` and the unit tests stay fast.

To add a task: subclass :class:`Task`, register it in ``nalu_suite/tasks/__init__.py`` and add
``conf/task/<name>.yaml``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn


class ArithmeticModel(nn.Module):
    """An ``nn.Module`` whose arithmetic parts expose ``regularizer``, ``sparsity_error`` and ``project_``.

    Subclasses only write ``forward``; the three hooks are collected from every submodule that
    defines them (units and recurrent cells), so models need no bookkeeping of their own.
    """

    def _arithmetic_parts(self) -> Iterator[nn.Module]:
        from nalu_suite.units.base import ArithmeticUnit

        for module in self.modules():
            if isinstance(module, ArithmeticUnit):
                yield module

    def regularizer(self) -> torch.Tensor:
        terms = [m.regularizer() for m in self._arithmetic_parts()]
        return torch.stack(terms).sum() if terms else torch.zeros(())

    def sparsity_error(self) -> torch.Tensor:
        errors = [m.sparsity_error() for m in self._arithmetic_parts() if m.effective_weights()]
        return torch.stack(errors).max() if errors else torch.zeros(())

    @torch.no_grad()
    def project_(self) -> None:
        for m in self._arithmetic_parts():
            m.project_()

    def on_train_step(self, step: int) -> None:
        """Called before each training step with the global step, for step-dependent schedules."""


class Task:
    """Base class of every task. Construct with the plain ``task``/``unit`` config dicts and a seed.

    The constructor validates the config (raise :class:`nalu_suite.errors.ConfigError`, naming the bad
    value and the valid choices) so that mistakes surface before any training starts.
    """

    name: str = "task"
    #: names of the validation dataloaders, in order. The first is used for model selection.
    val_splits: tuple[str, ...] = ("val",)
    #: names of the test dataloaders, in order; metrics are logged as f"{split}/{metric}".
    test_splits: tuple[str, ...] = ("test",)
    #: the metric checkpoints and sweeps optimise, e.g. "val/mse"; always minimised.
    monitor: str = "val/mse"
    #: success criterion (Madsen & Johansen): ``success_metric`` (a test metric, e.g. "test/extrap/mse")
    #: below ``success_threshold()``; ``solved_metric`` is the same quantity on a validation split,
    #: watched during training to find the first step that meets the criterion (``solved_at``).
    success_metric: str | None = None
    solved_metric: str | None = None

    def __init__(self, task: dict[str, Any], unit: dict[str, Any], seed: int) -> None:
        self.cfg = task
        self.unit = unit
        self.seed = seed

    # --- model -------------------------------------------------------------------------------
    def system_class(self):
        """The LightningModule class that trains this task; ``None``: the supervised ``ArithmeticSystem``
        (an RL task such as ``gridworld`` brings its own)."""
        return None

    def build_model(self) -> ArithmeticModel:
        raise NotImplementedError

    # --- data --------------------------------------------------------------------------------
    def build_datamodule(self, data_dir: str | Path, batch_size: int):
        """A ``LightningDataModule`` whose val/test dataloaders follow ``val_splits``/``test_splits``."""
        raise NotImplementedError

    def preview(self, n: int) -> list[dict[str, Any]]:
        """``n`` samples as plain dicts: ``text`` (if the task has one), numeric ``inputs``, ``target``."""
        raise NotImplementedError

    # --- steps -------------------------------------------------------------------------------
    def predict(self, model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(prediction, target)`` for a batch; the default reads ``(inputs, target)`` tuples."""
        inputs, target = batch
        return model(inputs), target

    def on_train_step(self, step: int) -> None:
        """Called by both engines before each training step with the global step, for what the task
        changes during training (e.g. ``recurrent_arith``'s length curriculum)."""

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        """Training loss without regularisers (the system adds them); MSE by default."""
        pred, target = self.predict(model, batch)
        return torch.nn.functional.mse_loss(pred, target)

    # --- metrics -----------------------------------------------------------------------------
    def make_metric(self, split: str):
        """A fresh ``torchmetrics.Metric`` for ``split``; ``compute()`` returns ``{name: value}``.
        Default: :class:`nalu_suite.metrics.ErrorStats`, imported here (torchmetrics is slow to import)."""
        from nalu_suite.metrics import ErrorStats

        return ErrorStats()

    def finalize_metrics(self, split: str, values: dict[str, float]) -> dict[str, float]:
        """Post-process a split's metrics (e.g. add the normalised error); returns what gets logged."""
        return values

    def baseline_models(self, split: str) -> list[ArithmeticModel]:
        """The models whose MSEs on ``split``'s fixed set ``finalize_metrics`` still needs (a baseline that
        normalises the error), for an engine that evaluates them in bulk and hands the MSEs to
        ``record_baseline``; none by default."""
        return []

    def record_baseline(self, split: str, mses: list[float]) -> None:
        """Keep the MSEs of ``baseline_models(split)`` on ``split``'s fixed set, in their order."""
        raise NotImplementedError(f"task {self.name} has no baseline models")

    def success_threshold(self) -> float | None:
        """Threshold on ``success_metric`` below which a run counts as solved (None: no criterion)."""
        return None

    # --- optimisation --------------------------------------------------------------------------
    def input_whitening(self) -> dict[str, torch.Tensor]:
        """``{parameter name: P}`` for the model's weights ``W`` applied to the inputs as ``W x``, with
        ``P = E[x x^T]^(-1/2)`` of the training inputs, for ``optim.whiten_from``; empty where unknown."""
        return {}

    # --- artefacts ---------------------------------------------------------------------------
    def make_figures(self, model: nn.Module, run_dir: Path) -> list[Path]:
        """Write the task's figures (PNG) into ``run_dir`` after training; return their paths."""
        return []
