"""A ``replicas=R`` run through the configured Lightning loggers (``logger=csv|tensorboard|wandb``).

Every validation logs the medians over the live replicas (``train/loss``, the task's monitor) and how
many are solved and diverged; the end logs every summary of ``results.summarize`` (the success rate
and its interval, ``solved_at_median``, the means) as metrics and, for W&B, as the run summary, and
the per-seed table: ``replicas.csv`` in the run directory and, for W&B, a ``wandb.Table``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _median(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.median(finite)) if finite else math.nan


class ReplicaLoggers:
    """Fan a replica run's progress and results out to Lightning loggers (none: does nothing)."""

    def __init__(self, loggers: list) -> None:
        self.loggers = loggers

    def log_hyperparams(self, config: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.log_hyperparams(config)

    def log_validation(self, step: int, run) -> None:
        """Medians over the replicas at a validation step, and the solved and diverged counts."""
        if not self.loggers:
            return
        tracker, monitor = run.tracker, run.task.monitor
        metrics = {
            "solved": float(tracker.solved),
            "diverged": float(tracker.diverged),
            f"{monitor}_median": tracker.median(monitor),
        }
        if run.last_loss is not None:
            metrics["train/loss_median"] = _median(run.last_loss[run.alive].tolist())
        for logger in self.loggers:
            logger.log_metrics(metrics, step=step)

    def log_results(self, results: dict[str, Any], rows: list[dict[str, Any]], step: int) -> None:
        """The summaries as metrics (and the W&B summary) and the per-seed rows as a W&B table."""
        summary = {k: float(v) for k, v in results.items() if isinstance(v, (int, float)) and k != "replicas"}
        columns = sorted({key for row in rows for key in row})
        for logger in self.loggers:
            logger.log_metrics(summary, step=step)
            if type(logger).__name__ == "WandbLogger":
                logger.experiment.summary.update(summary)
                data = [[row.get(c) for c in columns] for row in rows]
                logger.log_table(key="replicas", columns=columns, data=data)

    def finalize(self, status: str = "success") -> None:
        for logger in self.loggers:
            logger.save()
            logger.finalize(status)
