"""The LightningModule of the grid-world task (Trask et al. 2018, §4.5): one A2C update per training step.

It takes the same plain arguments as ``nalu_suite.system.ArithmeticSystem`` (so ``train.py``, checkpoints,
resuming and the loggers work unchanged) and exposes the same ``task``, ``model`` and ``solved_at``.
The "batches" are placeholders (:class:`StepsDataModule`): every step draws its own episodes from the
batched environment. The units' regulariser (the clock agent's NAU) is added with the configured ramp and
its weights are projected after every step, as in ``ArithmeticSystem``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from nalu_suite.divergence import DivergenceError
from nalu_suite.optim import build_optimizer, check_optim
from nalu_suite.schedule import NO_REGULARIZER, regularizer_weight
from nalu_suite.tasks import build_task
from nalu_suite.tasks.gridworld.a2c import a2c_loss, rollout
from nalu_suite.tasks.gridworld.evaluate import success_by_T


class _Forever(IterableDataset):
    def __iter__(self):
        while True:
            yield 0


class StepsDataModule(L.LightningDataModule):
    """Endless placeholder training batches; one placeholder batch for validation and for testing."""

    def train_dataloader(self):
        return DataLoader(_Forever(), batch_size=1)

    def val_dataloader(self):
        return DataLoader([0], batch_size=1)

    def test_dataloader(self):
        return DataLoader([0], batch_size=1)


class GridWorldSystem(L.LightningModule):
    def __init__(
        self,
        task: dict[str, Any],
        unit: dict[str, Any],
        optim: dict[str, Any],
        regularizer: dict[str, Any] | None = None,
        seed: int = 0,
        max_steps: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_optim(optim)
        self.task = build_task(task, unit, seed)
        self.model = self.task.build_model()
        self.env = self.task.build_env()
        self.reg = NO_REGULARIZER | dict(regularizer or {})
        self.solved_at: int | None = None  # no success criterion: the per-T rates are the results
        self.generator = torch.Generator().manual_seed(seed)

    def entropy_coef(self) -> float:
        """Linear decay from ``entropy_coef`` to ``entropy_final`` over the run's ``max_steps``."""
        start, end = self.task.a2c["entropy_coef"], self.task.a2c["entropy_final"]
        total = self.hparams.max_steps or 1
        return start + (end - start) * min(1.0, self.global_step / max(1, total))

    def training_step(self, batch, batch_idx):
        T = torch.tensor(self.task.train_T)[
            torch.randint(len(self.task.train_T), (self.task.envs,), generator=self.generator)
        ]
        episodes = rollout(self.model, self.env, T, self.generator)
        a2c = self.task.a2c
        loss, parts = a2c_loss(
            episodes, a2c["gamma"], a2c["gae_lambda"], a2c["value_coef"], self.entropy_coef()
        )
        lam = regularizer_weight(self.reg, self.global_step)
        total = loss + lam * self.model.regularizer() if lam else loss
        if not torch.isfinite(total):
            raise DivergenceError(f"the A2C loss became {total.item()} at step {self.global_step}")
        self.log("train/return", episodes.reward.sum(0).mean(), prog_bar=True)
        self.log("train/loss", loss)
        for name, value in parts.items():
            self.log(f"train/{name}", value)
        return total

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.model.project_()

    def _success(self, T_values: list[int], episodes: int) -> dict[int, float]:
        seed = int(self.hparams.seed) + 10_000  # fixed evaluation episodes per seed
        return success_by_T(self.model, self.env, T_values, episodes, seed, self.task.greedy_eval)

    def validation_step(self, batch, batch_idx) -> None:
        success = self._success(self.task.train_T, self.task.val_episodes)
        mean = sum(success.values()) / len(success)
        self.log("val/success", mean, prog_bar=True)
        self.log("val/failure", 1.0 - mean)
        self.log("sparsity_error", float(self.model.sparsity_error()))

    def test_step(self, batch, batch_idx) -> None:
        for name, value in self.task.test_metrics(
            self._success(self.task.test_T, self.task.test_episodes)
        ).items():
            self.log(name, value)

    def configure_optimizers(self):
        return build_optimizer(list(self.model.parameters()), self.hparams.optim, int(self.trainer.max_steps))
