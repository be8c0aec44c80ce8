"""Metrics that stay correct under DDP: every state is a sum, reduced across processes before use.

``ErrorStats`` accumulates what every task reports (MSE, MAE, exact-after-rounding, relative
error); tasks that need more subclass it (see ``tasks/program_eval/metric.py``).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


class ErrorStats(Metric):
    """Sums of squared error, absolute error, |target| and rounded-exact matches over samples.

    A sample is *exact* when every output, rounded to the nearest integer, equals the target
    (for a 10-vector of counts: all ten counts right).
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        for name in ("sse", "sae", "sum_abs_target", "exact", "count", "values"):
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred = pred.detach().to(torch.float64).reshape(target.shape[0], -1)
        target = target.detach().to(torch.float64).reshape(target.shape[0], -1)
        err = pred - target
        self.sse += err.pow(2).sum()
        self.sae += err.abs().sum()
        self.sum_abs_target += target.abs().sum()
        self.exact += (pred.round() == target.round()).all(dim=1).sum()
        self.count += target.shape[0]
        self.values += target.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        n = self.values.clamp_min(1)
        return {
            "mse": self.sse / n,
            "mae": self.sae / n,
            "rel_err": self.sae / self.sum_abs_target.clamp_min(1e-12),
            "exact": self.exact / self.count.clamp_min(1),
        }


class PerGroupMAE(Metric):
    """Mean absolute error per named group of outputs.

    Predictions are ``(batch, groups, members)`` against a ``(batch,)`` target; each group's error is
    averaged over its members (e.g. the identity-failure task's models per activation)."""

    full_state_update = False

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names
        self.add_state("sae", default=torch.zeros(len(names), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        err = (pred.double() - target.double().reshape(-1, 1, 1)).abs()
        self.sae += err.mean(dim=2).sum(dim=0)
        self.count += target.shape[0]

    def compute(self) -> dict[str, torch.Tensor]:
        mae = self.sae / self.count.clamp_min(1)
        return {f"{a}/mae": mae[i] for i, a in enumerate(self.names)} | {"mae": mae.mean()}
