"""The Lightning DataModule of the MNIST sequence tasks (Trask et al. 2018 §4.2).

:class:`MnistSequenceDataModule` serves a task's batches: ``prepare_data`` runs
:func:`~nalu_suite.tasks.mnist.data.prepare_mnist`, ``setup`` loads the images into the task. It knows the
task only through :class:`SequenceSource` (the methods it calls), so it does not import the task module;
the task imports this module lazily (it imports Lightning), so configs and previews stay fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from nalu_suite.data import BatchStream
from nalu_suite.tasks.mnist.data import MnistDigits, load_mnist, prepare_mnist


class SequenceSource(Protocol):
    """What the datamodule needs of a task (``MnistSequenceTask`` of ``tasks/mnist/task.py`` has it)."""

    seed: int
    verify_checksums: bool
    digits: MnistDigits | None
    val_splits: Sequence[str]
    test_splits: Sequence[str]

    def attach_digits(self, digits: MnistDigits) -> None: ...

    def sample_train(self, g: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]: ...

    def fixed_set(self, split: str) -> tuple[torch.Tensor, torch.Tensor]: ...


class MnistSequenceDataModule(L.LightningDataModule):
    """Batches of ``(image indices (B, T), target)`` for an MNIST sequence task (``tasks/mnist/task.py``).

    Training: an endless stream of fresh length-``train_length`` sequences from the training pool.
    Validation and test: the task's fixed index sequences, in ``val_splits`` / ``test_splits`` order; long
    sequences come in smaller batches (at most ``eval_items`` images per batch).
    """

    def __init__(
        self, task: SequenceSource, data_dir: str | Path, batch_size: int, eval_items: int = 100_000
    ) -> None:
        super().__init__()
        self.task = task
        self.data_dir = Path(data_dir)
        self.batch_size = batch_size
        self.eval_items = eval_items

    def prepare_data(self) -> None:
        prepare_mnist(self.data_dir, verify_checksums=self.task.verify_checksums)

    def setup(self, stage: str | None = None) -> None:
        if self.task.digits is None:
            self.task.attach_digits(load_mnist(self.data_dir))

    def train_dataloader(self):
        return DataLoader(
            BatchStream(self.task.sample_train, self.batch_size, self.task.seed), batch_size=None
        )

    def _eval(self, splits):
        loaders = []
        for split in splits:
            indices, target = self.task.fixed_set(split)
            batch = max(1, min(len(indices), self.eval_items // indices.shape[1]))
            loaders.append(DataLoader(TensorDataset(indices, target), batch_size=batch))
        return loaders

    def val_dataloader(self):
        return self._eval(self.task.val_splits)

    def test_dataloader(self):
        return self._eval(self.task.test_splits)
