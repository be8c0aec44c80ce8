"""``ErrorStats`` and its stacked form for R models (``StackedErrorStats``, the replica engine's)."""

from __future__ import annotations

import pytest
import torch

from nalu_suite.metrics import ErrorStats, StackedErrorStats


def test_error_stats_sums_squared_absolute_and_exact_over_every_output():
    metric = ErrorStats()
    metric.update(torch.tensor([[1.0, 2.0], [3.0, 4.4]]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    metric.update(torch.tensor([[0.0, -2.0]]), torch.tensor([[2.0, -2.0]]))
    values = {name: float(v) for name, v in metric.compute().items()}
    assert values["mse"] == pytest.approx((0.4**2 + 2.0**2) / 6, rel=1e-6)  # 4.4 in float32
    assert values["mae"] == pytest.approx(2.4 / 6, rel=1e-6)
    assert values["rel_err"] == pytest.approx(2.4 / 14.0, rel=1e-6)
    assert values["exact"] == 2 / 3  # 4.4 rounds to 4: exact; 0 is not 2


def test_stacked_error_stats_equal_one_error_stats_per_model_bit_for_bit():
    """Each model's metrics from one stacked update per batch, the same float64 sums in the same order
    as its own ``ErrorStats`` (on float32 inputs with rounding-sensitive sums, over two batches)."""
    g = torch.Generator().manual_seed(0)
    R, outputs = 5, 3
    batches = [
        (torch.randn(R, n, outputs, generator=g) * 1e3, torch.randn(R, n, outputs, generator=g).round())
        for n in (7, 1000)
    ]
    stacked = StackedErrorStats()
    single = [ErrorStats() for _ in range(R)]
    for pred, target in batches:
        pred[0, :3] = target[0, :3]  # some exact samples
        stacked.update(pred, target)
        for k, metric in enumerate(single):
            metric.update(pred[k], target[k])
    together = stacked.compute()
    for k, metric in enumerate(single):
        for name, value in metric.compute().items():
            assert together[name][k].item() == value.item(), name
    assert together["exact"][0] > 0 and together["exact"][1] == 0
