"""The one LightningModule every task trains with.

Loss = task loss (MSE) + λ(step) · Σ unit regularisers, λ ramped as ``schedule.regularizer_weight``
says (Madsen & Johansen 2020; zero while ``regularizer.gate`` is closed). After every optimiser step the
units' constrained weights are projected back into their box (NAU to [-1, 1], NMU to [0, 1]), and with
``reinit.every > 0`` a stuck run is re-initialised (``nalu_suite.reinit``, iNALU's rule).

Only plain values go into ``save_hyperparameters``, so
``ArithmeticSystem.load_from_checkpoint(path, weights_only=True)`` rebuilds the model from the checkpoint
alone.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from nalu_suite.divergence import DivergenceError
from nalu_suite.optim import build_optimizer, check_optim, whitening_pairs
from nalu_suite.reinit import StuckRuns, fresh_parameters
from nalu_suite.schedule import NO_REGULARIZER, regularizer_open, regularizer_weight, update_solved_at
from nalu_suite.tasks import build_task


class ArithmeticSystem(L.LightningModule):
    def __init__(
        self,
        task: dict[str, Any],
        unit: dict[str, Any],
        optim: dict[str, Any],
        regularizer: dict[str, Any] | None = None,
        seed: int = 0,
        max_steps: int | None = None,
        reinit: dict[str, Any] | None = None,
    ) -> None:
        """``max_steps`` is recorded with the hyper-parameters (the budget the run was given; the
        trainer's own ``max_steps`` drives training); ``reinit``: the ``reinit`` config (None: off)."""
        super().__init__()
        self.save_hyperparameters()
        check_optim(optim)
        self.task = build_task(task, unit, seed)
        self.model = self.task.build_model()
        self.metrics = nn.ModuleDict(
            {self._key("val", split): self.task.make_metric(split) for split in self.task.val_splits}
            | {self._key("test", split): self.task.make_metric(split) for split in self.task.test_splits}
        )
        self.reg = NO_REGULARIZER | dict(regularizer or {})
        self.solved_at: int | None = None
        self.unit_label = unit.get("name", "?")
        capacity = max_steps + 1 if max_steps and max_steps > 0 else 1024
        self.stuck = StuckRuns(reinit or {}, runs=1, capacity=capacity)
        self._reinit_at: int | None = None  # the step whose loss called for a re-initialisation
        self.latest_monitor: float | None = None  # task.monitor at the last validation (the gate, reinit)

    @staticmethod
    def _key(stage: str, split: str) -> str:
        return f"{stage}__{split.replace('/', '__')}"

    def forward(self, inputs):
        return self.model(inputs)

    # --- training ---------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        self.model.on_train_step(int(self.global_step))
        self.task.on_train_step(int(self.global_step))
        task_loss = self.task.loss(self.model, batch)
        lam = regularizer_weight(self.reg, self.global_step)  # the schedule's, logged as train/reg_weight
        applied = lam if regularizer_open(self.reg, self.latest_monitor) else 0.0
        loss = task_loss + applied * self.model.regularizer() if applied else task_loss
        if not torch.isfinite(loss):
            raise DivergenceError(
                f"loss became {loss.item()} at step {self.global_step} with unit {self.unit_label!r} "
                f"(task {self.task.name}); {self._last_checkpoint_note()}"
            )
        self.log("train/loss", task_loss, prog_bar=True, sync_dist=True)
        if lam:
            self.log("train/reg_weight", lam)
        if self.stuck.enabled:
            watched = self.stuck.watched(task_loss, self.latest_monitor)
            if watched is not None and bool(self.stuck.record(int(self.global_step), watched)[0]):
                self._reinit_at = int(self.global_step)
            self.log("train/reinits", float(self.stuck.count[0] + (self._reinit_at is not None)))
        return loss

    def on_train_start(self) -> None:
        if self.global_step == 0 and self.latest_monitor is None and self.stuck.watches_validation:
            self.latest_monitor = self._untrained_monitor()

    @torch.no_grad()
    def _untrained_monitor(self) -> float | None:
        """``task.monitor`` of the model before its first step, on the validation sets, not logged: what
        ``reinit.signal=validation`` stores until the first validation (reinit.py)."""
        loaders = self.trainer.datamodule.val_dataloader()
        loaders = loaders if isinstance(loaders, (list, tuple)) else [loaders]
        self.eval()
        try:
            for index, loader in enumerate(loaders):
                for batch in loader:
                    batch = self.transfer_batch_to_device(batch, self.device, index)
                    self._eval_step("val", self.task.val_splits, batch, index)
        finally:
            self.train()
        return self._computed_metrics("val", self.task.val_splits).get(self.task.monitor)

    def _last_checkpoint_note(self) -> str:
        for cb in self.trainer.checkpoint_callbacks:
            if getattr(cb, "last_model_path", ""):
                return f"the last good checkpoint is {cb.last_model_path}"
        return "no checkpoint was saved before it (lower optim.lr or validate more often)"

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.model.project_()
        if self._reinit_at is not None:  # after the optimiser step whose loss called for it
            fresh = fresh_parameters(self.task, int(self.hparams.seed), self._reinit_at)
            self._reinit_at = None
            with torch.no_grad():
                for name, value in self.model.named_parameters():
                    value.copy_(fresh[name])
            self.stuck.cleared(torch.ones(1, dtype=torch.bool))

    # --- evaluation -------------------------------------------------------------------------
    def _eval_step(self, stage: str, splits, batch, dataloader_idx: int) -> None:
        pred, target = self.task.predict(self.model, batch)
        self.metrics[self._key(stage, splits[dataloader_idx])].update(pred, target)

    def _computed_metrics(self, stage: str, splits) -> dict[str, float]:
        """``<split>/<metric>`` of the batches seen since the last call (the metrics are reset)."""
        logged: dict[str, float] = {}
        for split in splits:
            metric = self.metrics[self._key(stage, split)]
            values = {k: float(v) for k, v in metric.compute().items()}
            metric.reset()
            for name, value in self.task.finalize_metrics(split, values).items():
                logged[f"{split}/{name}"] = value
        return logged

    def _eval_epoch_end(self, stage: str, splits) -> dict[str, float]:
        logged = self._computed_metrics(stage, splits)
        logged["sparsity_error"] = float(self.model.sparsity_error())
        for name, value in logged.items():
            self.log(name, value, sync_dist=False)
        return logged

    def validation_step(self, batch, batch_idx, dataloader_idx: int = 0) -> None:
        self._eval_step("val", self.task.val_splits, batch, dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        logged = self._eval_epoch_end("val", self.task.val_splits)
        if self.trainer.sanity_checking:
            return
        self.latest_monitor = logged.get(self.task.monitor)
        watched = self.task.solved_metric
        value = logged.get(watched) if watched else None
        self.solved_at = update_solved_at(
            self.solved_at, value, self.task.success_threshold(), int(self.global_step)
        )
        if self.solved_at is not None:
            self.log("solved_at", float(self.solved_at))

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0) -> None:
        self._eval_step("test", self.task.test_splits, batch, dataloader_idx)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test", self.task.test_splits)

    # --- checkpoint state -------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["solved_at"] = self.solved_at
        checkpoint["latest_monitor"] = self.latest_monitor

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.solved_at = checkpoint.get("solved_at")
        self.latest_monitor = checkpoint.get("latest_monitor")

    # --- optimiser --------------------------------------------------------------------------
    def configure_optimizers(self):
        pairs = whitening_pairs(self.model.named_parameters(), self.task.input_whitening())
        return build_optimizer(
            list(self.model.parameters()), self.hparams.optim, int(self.trainer.max_steps), pairs
        )


def system_class_for(task) -> type[L.LightningModule]:
    """The LightningModule that trains ``task``: its own ``system_class()``, else ``ArithmeticSystem``."""
    return task.system_class() or ArithmeticSystem
