"""Each replica's bookkeeping, as a plain Lightning run keeps it: ``solved_at``, its best checkpoint by the
task's monitor, divergence, what it logged last, and its result row (``nalu_suite.results``)."""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch

from nalu_suite.replicas.model import per_replica
from nalu_suite.results import as_logged, result_row
from nalu_suite.schedule import update_solved_at


class ReplicaTracker:
    """Per-replica state across validations; ``best_params`` holds each replica's best weights."""

    def __init__(self, tasks: list, seeds: list[int]) -> None:
        self.tasks, self.seeds = tasks, seeds
        R = len(seeds)
        self.thresholds = [task.success_threshold() for task in tasks]
        self.solved_at: list[int | None] = [None] * R
        self.diverged_at: list[int | None] = [None] * R
        self.best_score = [math.inf] * R  # as logged (float32), NaN counted as +inf
        self.best_step: list[int | None] = [None] * R
        self.best_params: dict[str, torch.Tensor] | None = None
        self.last_logged: list[dict[str, float]] = [{} for _ in range(R)]
        self.train_logged: list[dict[str, float]] = [{} for _ in range(R)]
        self.history: list[dict[str, float]] = []

    @property
    def solved(self) -> int:
        return sum(v is not None for v in self.solved_at)

    @property
    def diverged(self) -> int:
        return sum(v is not None for v in self.diverged_at)

    def median(self, metric: str) -> float:
        """The median over the replicas of ``metric`` as last validated (NaN and missing values left out)."""
        values = [row[metric] for row in self.last_logged if metric in row and not math.isnan(row[metric])]
        return float(statistics.median(values)) if values else math.nan

    def record_validation(
        self, step: int, logged: list[dict[str, float]], params: dict[str, torch.Tensor]
    ) -> None:
        """A validation's metrics at ``step``: ``solved_at``, best scores, and the best weights of the
        replicas that improved (from ``params``, the current stacked weights)."""
        task = self.tasks[0]
        improved = torch.zeros(len(self.seeds), dtype=torch.bool)
        for k, values in enumerate(logged):
            if self.diverged_at[k] is not None:
                continue
            watched = values.get(task.solved_metric) if task.solved_metric else None
            self.solved_at[k] = update_solved_at(self.solved_at[k], watched, self.thresholds[k], step)
            score = as_logged(values[task.monitor]) if task.monitor in values else math.nan
            score = math.inf if math.isnan(score) else score
            if self.best_step[k] is None or score < self.best_score[k]:
                self.best_score[k], self.best_step[k] = score, step
                improved[k] = True
            shown = {name: as_logged(v) for name, v in values.items()}
            if self.solved_at[k] is not None:
                shown["solved_at"] = float(self.solved_at[k])
            self.last_logged[k] = shown
            self.history.append({"step": step, "seed": self.seeds[k]} | shown)
        if self.best_params is None:
            self.best_params = params
            return
        for name, value in params.items():
            mask = per_replica(improved.to(value.device), value)
            self.best_params[name] = torch.where(mask, value, self.best_params[name])

    def record_train_loss(self, losses: list[float], reg_weight: float) -> None:
        for row, loss in zip(self.train_logged, losses, strict=True):
            row["train/loss"] = as_logged(loss)
            if reg_weight:
                row["train/reg_weight"] = as_logged(reg_weight)

    def reported_solved_at(self, k: int) -> int | None:
        """``solved_at`` as the plain run reports it: the value saved with the best checkpoint, which the
        final test restores (so a replica first solved after its best-by-``monitor`` step reports none)."""
        solved, best = self.solved_at[k], self.best_step[k]
        if solved is None or (best is not None and solved > best):
            return None
        return solved

    def rows(
        self, test_logged: list[dict[str, float]], sparsity: list[float], steps: int, wall_time: float
    ) -> list[dict[str, Any]]:
        """Each replica's result row (``results.result_row``, as a plain run writes it) with its seed."""
        rows = []
        for k, seed in enumerate(self.seeds):
            metrics = self.last_logged[k] | self.train_logged[k] | test_logged[k]
            metrics.pop("solved_at", None)
            row = result_row(
                metrics,
                self.tasks[k],
                best_score=self.best_score[k] if self.best_step[k] is not None else None,
                solved_at=self.reported_solved_at(k),
                sparsity_error=sparsity[k],
                train_steps=steps,
                wall_time_s=wall_time / len(self.seeds),
                diverged_at=self.diverged_at[k],
            )
            rows.append(row | {"seed": seed})
        return rows
