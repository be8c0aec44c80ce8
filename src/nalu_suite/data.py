"""Data plumbing shared by the tasks: an endless stream of fresh training batches and a DataModule.

Training batches are drawn in bulk (``chunk`` batches at a time) from a generator seeded by
``(seed, chunk index)``, so the stream is reproducible and generation does not dominate a step of a
tiny model. Validation and test sets are fixed tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

from nalu_suite.rng import derive_seed

Sampler = Callable[[torch.Generator, int], tuple[torch.Tensor, ...]]


class BatchStream(IterableDataset):
    """Endless batches from ``sample(generator, n) -> tensors``; each iteration restarts at batch 0.

    ``skip(k)`` makes the next iteration start at batch ``k`` (used when resuming a run).
    """

    def __init__(self, sample: Sampler, batch_size: int, seed: int, chunk: int = 100) -> None:
        self.sample = sample
        self.batch_size = batch_size
        self.seed = seed
        self.chunk = chunk
        self.start = 0

    def _chunk(self, index: int) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(derive_seed(self.seed, "train", index))
        return self.sample(g, self.chunk * self.batch_size)

    def __iter__(self):
        batch = self.start
        while True:
            index, offset = divmod(batch, self.chunk)
            tensors = self._chunk(index)
            for i in range(offset, self.chunk):
                lo = i * self.batch_size
                yield tuple(t[lo : lo + self.batch_size] for t in tensors)
                batch += 1


class TensorDataModule(L.LightningDataModule):
    """A training ``BatchStream`` (or dataset) plus fixed validation and test tensor sets, in split order."""

    def __init__(
        self,
        train: IterableDataset | torch.utils.data.Dataset,
        val: Sequence[Sequence[torch.Tensor]],
        test: Sequence[Sequence[torch.Tensor]],
        batch_size: int,
        eval_batch_size: int = 10_000,
        shuffle: bool = False,
    ) -> None:
        super().__init__()
        self.train_set = train
        self.val_sets = [TensorDataset(*tensors) for tensors in val]
        self.test_sets = [TensorDataset(*tensors) for tensors in test]
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.shuffle = shuffle

    def train_dataloader(self):
        if isinstance(self.train_set, IterableDataset):
            return DataLoader(self.train_set, batch_size=None)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=self.shuffle)

    def _eval(self, sets):
        return [DataLoader(s, batch_size=self.eval_batch_size) for s in sets]

    def val_dataloader(self):
        return self._eval(self.val_sets)

    def test_dataloader(self):
        return self._eval(self.test_sets)
