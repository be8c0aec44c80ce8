"""Tasks trained on fresh draws from one range and judged on a fixed set from another (extrapolation).

The static task (Trask et al. 2018, §4.1) and Primer SMAT (Mistry et al. 2022) share their splits,
their metric names and how their data module is built; only the sampling differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nalu_suite.tasks.base import Task


class ExtrapolationTask(Task):
    """Validation and test on an interpolation and an extrapolation set; success and ``solved_at`` by
    the extrapolation MSE. Subclasses give ``sample``, ``fixed_set`` and ``training_range``."""

    val_splits = ("val", "val_extrap")
    test_splits = ("test/interp", "test/extrap")
    monitor = "val/mse"
    success_metric = "test/extrap/mse"
    solved_metric = "val_extrap/mse"

    @property
    def training_range(self) -> Any:
        """The values training batches are drawn from (``sample``'s range argument)."""
        raise NotImplementedError

    def sample(self, g: torch.Generator, n: int, value_range: Any, out=None):
        raise NotImplementedError

    def training_sample(self, g: torch.Generator, n: int, out=None):
        """``n`` training samples from ``training_range`` (the training stream's sampler)."""
        return self.sample(g, n, self.training_range, out=out)

    def fixed_set(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def build_datamodule(self, data_dir: str | Path, batch_size: int):
        """Fresh training batches from ``training_range`` (a ``BatchStream``), the fixed evaluation sets."""
        from nalu_suite.data import BatchStream, TensorDataModule

        return TensorDataModule(
            BatchStream(self.training_sample, batch_size, self.seed),
            val=[self.fixed_set(s) for s in self.val_splits],
            test=[self.fixed_set(s) for s in self.test_splits],
            batch_size=batch_size,
        )
