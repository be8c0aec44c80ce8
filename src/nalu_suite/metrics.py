"""Metrics that stay correct under DDP: every state is a sum, reduced across processes before use.

``ErrorStats`` accumulates what every task reports (MSE, MAE, exact-after-rounding, relative
error); tasks that need more subclass it (see ``tasks/program_eval/metric.py``).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

#: the sums ``ErrorStats`` keeps (its states), in the order ``error_sums`` returns them
SUMS = ("sse", "sae", "sum_abs_target", "exact", "count", "values")


def error_sums(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """``ErrorStats``' sums of one batch of ``(..., n, outputs)`` predictions and targets, in float64, over
    the last two dims (a sample is exact when every output rounds to its target's rounding)."""
    pred = pred.detach().to(torch.float64)
    target = target.detach().to(torch.float64)
    n, outputs = target.shape[-2:]
    err = pred - target
    return {
        "sse": err.pow(2).sum((-2, -1)),
        "sae": err.abs().sum((-2, -1)),
        "sum_abs_target": target.abs().sum((-2, -1)),
        "exact": (pred.round() == target.round()).all(dim=-1).sum(-1),
        "count": torch.tensor(float(n), dtype=torch.float64, device=target.device),
        "values": torch.tensor(float(n * outputs), dtype=torch.float64, device=target.device),
    }


def error_metrics(sums: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MSE, MAE, relative error and exact fraction from accumulated ``error_sums``."""
    n = sums["values"].clamp_min(1)
    return {
        "mse": sums["sse"] / n,
        "mae": sums["sae"] / n,
        "rel_err": sums["sae"] / sums["sum_abs_target"].clamp_min(1e-12),
        "exact": sums["exact"] / sums["count"].clamp_min(1),
    }


class ErrorStats(Metric):
    """Sums of squared error, absolute error, |target| and rounded-exact matches over samples.

    A sample is *exact* when every output, rounded to the nearest integer, equals the target
    (for a 10-vector of counts: all ten counts right).
    """

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        for name in SUMS:
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        n = target.shape[0]
        for name, value in error_sums(pred.reshape(n, -1), target.reshape(n, -1)).items():
            setattr(self, name, getattr(self, name) + value)

    def compute(self) -> dict[str, torch.Tensor]:
        return error_metrics({name: getattr(self, name) for name in SUMS})


class StackedErrorStats:
    """``ErrorStats`` of R models at once, each on its own samples: ``update`` takes ``(R, n, ...)``,
    ``compute`` gives ``(R,)`` per metric, the same sums (``error_sums``) in the same order as R
    ``ErrorStats`` (the replica engine's evaluation; no DDP reduction)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        R, n = target.shape[:2]
        batch = error_sums(pred.reshape(R, n, -1), target.reshape(R, n, -1))
        if not self.sums:  # zeros, as ErrorStats' states start
            self.sums = {name: torch.zeros((), dtype=torch.float64, device=target.device) for name in SUMS}
        self.sums = {name: self.sums[name] + value for name, value in batch.items()}

    def compute(self) -> dict[str, torch.Tensor]:
        return error_metrics(self.sums)


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
