"""Data plumbing shared by the tasks: an endless stream of fresh training batches and a DataModule.

Training batches are drawn in bulk (``chunk`` batches at a time) from a generator seeded by
``(seed, chunk index)``, so the stream is reproducible and generation does not dominate a step of a
tiny model. Validation and test sets are fixed tensors.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence

import lightning as L
import torch
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    DistributedSampler,
    IterableDataset,
    SequentialSampler,
    TensorDataset,
)

from nalu_suite.rng import derive_seed

Sampler = Callable[[torch.Generator, int], tuple[torch.Tensor, ...]]


class BatchStream(IterableDataset):
    """Endless batches from ``sample(generator, n[, out]) -> tensors``, reproducible from ``seed``.

    ``start``: the batch the next iteration begins with (a resumed run sets it to its global step, so
    it sees the batches an uninterrupted run would). ``shard = (rank, world_size)``: under DDP each
    process yields its slice of the same global batch, so ``batch_size`` means the same thing for any
    process count and a 2-process run computes the same gradient as a 1-process run.
    """

    def __init__(self, sample: Sampler, batch_size: int, seed: int, chunk: int = 100) -> None:
        self.sample = sample
        self.batch_size = batch_size
        self.seed = seed
        self.chunk = chunk
        self.start = 0
        self.shard = (0, 1)

    def draw_chunk(self, index: int, out: Sequence[torch.Tensor] | None = None) -> Sequence[torch.Tensor]:
        """The ``chunk * batch_size`` samples of chunk ``index``, written into ``out`` if given.

        A sampler that takes ``out=`` (tensors of the shapes it returns) draws into it directly, others are
        copied; either way the values are those of ``sample(generator, n)``.
        """
        g = self.generator(index)
        n = self.chunk * self.batch_size
        if out is None:
            return self.sample(g, n)
        if self.splittable:
            return self.sample(g, n, out=out)
        for slot, tensor in zip(out, self.sample(g, n), strict=True):
            slot.copy_(tensor)
        return out

    def generator(self, index: int) -> torch.Generator:
        """The generator that draws chunk ``index``."""
        return torch.Generator().manual_seed(derive_seed(self.seed, "train", index))

    @functools.cached_property
    def splittable(self) -> bool:
        """Whether the sampler takes ``out=``; such a sampler must also draw ``n`` samples in pieces from
        one generator exactly as in one call (true of ``uniform_`` fills, which use the generator element
        by element), so a chunk can be drawn a few batches at a time (``replicas/data.py``)."""
        return "out" in inspect.signature(self.sample).parameters

    def __iter__(self):
        rank, world = self.shard
        part = self.batch_size // world
        batch = self.start
        while True:
            index, offset = divmod(batch, self.chunk)
            tensors = self.draw_chunk(index)
            for i in range(offset, self.chunk):
                lo = i * self.batch_size + rank * part
                yield tuple(t[lo : lo + part] for t in tensors)
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

    def setup(self, stage: str) -> None:
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            return
        if self.batch_size % trainer.world_size:
            raise ValueError(
                f"batch_size={self.batch_size} is not divisible by the {trainer.world_size} processes; "
                "batch_size is the global batch, split evenly across processes"
            )
        if isinstance(self.train_set, BatchStream):
            self.train_set.shard = (trainer.global_rank, trainer.world_size)

    def train_dataloader(self):
        if isinstance(self.train_set, BatchStream):
            # a resumed run (global step restored before this is called) continues where it stopped
            self.train_set.start = self.trainer.global_step if self.trainer else 0
        if isinstance(self.train_set, IterableDataset):
            return DataLoader(self.train_set, batch_size=None)
        world = self.trainer.world_size if self.trainer else 1
        if world == 1:
            return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=self.shuffle)
        sampler = DistributedSampler(self.train_set, world, self.trainer.global_rank, shuffle=self.shuffle)
        return DataLoader(self.train_set, batch_size=self.batch_size // world, sampler=sampler)

    def _eval(self, sets):
        # fetch whole slices (one index list per batch) instead of collating sample by sample
        return [
            DataLoader(
                s, sampler=BatchSampler(SequentialSampler(s), self.eval_batch_size, False), batch_size=None
            )
            for s in sets
        ]

    def val_dataloader(self):
        return self._eval(self.val_sets)

    def test_dataloader(self):
        return self._eval(self.test_sets)
