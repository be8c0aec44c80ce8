"""The training streams of R seeds, stacked: one ``(R, batch, ...)`` batch per step.

Replica ``k`` reads exactly the batches of its own plain run: the same ``BatchStream`` (same sampler,
batch size, seed and chunk generators). Drawing costs about as much as a step of the tiny models, so a
background thread draws the next *block* of batches while the training loop consumes the current one
(PyTorch releases the GIL inside its kernels, so on two cores the two overlap).

Blocks are small (``block`` = 10 steps: 50 MB per buffer for R = 100 replicas of the static
task, against 0.5 GB for a whole chunk of 100 steps), and their two buffers are allocated once and
reused, so no step pays for the page faults of a fresh buffer (2-4 ms per step at R = 100 when every
chunk was a new 0.5 GB tensor). This needs a *splittable* sampler, one that takes ``out=`` (see
``BatchStream``): each seed then draws its next ``block * batch`` samples from its chunk's generator
straight into its slot, with no copy. Other samplers are drawn a whole chunk at a time and copied.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from nalu_suite.data import BatchStream


class StackedBatches:
    """Iterate ``(R, batch, ...)`` training batches of ``streams``, from each stream's first batch.

    ``prefetch=True`` draws the next block in a background thread. The streams must share batch size
    and chunk length (they do: one config, different seeds). Close the iterator (``it.close()``, or let
    it be garbage-collected) to stop the thread.

    The batches are views into two reused block buffers: a batch is valid until the consumer asks for
    the first batch of the next block (then the block before is overwritten). Clone a batch to keep it.
    """

    def __init__(
        self, streams: Sequence[BatchStream], prefetch: bool = True, device="cpu", block: int = 10
    ) -> None:
        if len({(s.batch_size, s.chunk) for s in streams}) != 1:
            raise ValueError("all replica streams must share batch_size and chunk")
        self.streams = list(streams)
        self.prefetch = prefetch
        self.device = torch.device(device)
        chunk = self.streams[0].chunk
        splittable = all(s.splittable for s in self.streams)
        self.block = block if splittable and 0 < block <= chunk and chunk % block == 0 else chunk

    def _new_buffer(self) -> list[torch.Tensor]:
        """Empty ``(R, block, batch, ...)`` tensors, shaped and typed like one sample of the sampler."""
        probe = self.streams[0].sample(torch.Generator().manual_seed(0), 1)
        size = (len(self.streams), self.block, self.streams[0].batch_size)
        return [torch.empty(size + t.shape[1:], dtype=t.dtype) for t in probe]

    def draw_block(
        self, j: int, out: list[torch.Tensor], generators: list[torch.Generator]
    ) -> list[torch.Tensor]:
        """Block ``j`` (batches ``j * block`` to ``(j + 1) * block - 1``) of every stream, into ``out``.

        Blocks must be drawn in order: a splittable stream's block continues its chunk's generator, kept
        in ``generators`` (one per stream, replaced at each chunk's first block).
        """
        chunk = self.streams[0].chunk
        index, part = divmod(j * self.block, chunk)
        if part == 0 and self.block < chunk:
            generators[:] = [stream.generator(index) for stream in self.streams]
        for k, stream in enumerate(self.streams):
            slots = [t[k].flatten(0, 1) for t in out]
            if self.block == chunk:
                stream.draw_chunk(index, out=slots)
            else:
                stream.sample(generators[k], len(slots[0]), out=slots)
        return out

    def _blocks(self) -> Iterator[list[torch.Tensor]]:
        """Blocks 0, 1, 2, ... in two reused buffers: block ``j`` is drawn into buffer ``j % 2``.

        Block ``j + 1`` is drawn (in the background with ``prefetch``) once block ``j - 1`` is used up,
        i.e. when the consumer asks for block ``j``'s first batch.
        """
        buffers = [self._new_buffer(), self._new_buffer()]
        generators: list[torch.Generator] = []
        j = 0
        if not self.prefetch:
            while True:
                yield self.draw_block(j, buffers[j % 2], generators)
                j += 1
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replica-data")
        try:
            upcoming = pool.submit(self.draw_block, 0, buffers[0], generators)
            while True:
                current = upcoming.result()  # block j; block j - 1 is used up
                upcoming = pool.submit(self.draw_block, j + 1, buffers[(j + 1) % 2], generators)
                j += 1
                yield current
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for tensors in self._blocks():
            tensors = tuple(t.to(self.device, non_blocking=True) for t in tensors)
            for i in range(self.block):
                yield tuple(t[:, i] for t in tensors)
