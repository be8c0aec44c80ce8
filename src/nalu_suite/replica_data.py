"""The training streams of R seeds, drawn in bulk and stacked: one ``(R, batch, ...)`` batch per step.

Replica ``k`` reads exactly the batches of its own plain run: the same ``BatchStream`` (same sampler,
batch size, seed and chunking), whose chunks are drawn here ``chunk`` batches at a time. Drawing is the
dominant cost of a step for tiny models, so a background thread draws chunk ``i + 1`` while the
training loop consumes chunk ``i`` (PyTorch releases the GIL inside its kernels, so on two cores the
two overlap). At most two stacked chunks exist at a time: ``2 * R * chunk * batch * features`` floats,
about 1 GB for R = 100 replicas of the static task (100 inputs, chunks of 100 batches of 128).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from nalu_suite.data import BatchStream


def stack_chunk(streams: Sequence[BatchStream], index: int) -> tuple[torch.Tensor, ...]:
    """Chunk ``index`` of every stream, laid out ``(R, chunk, batch, ...)``.

    Each replica's chunk is drawn with its stream's own generator and copied into its (contiguous) slot
    at once, so only one replica's chunk exists besides the stacked result. A step's batch,
    ``[:, i]``, is a strided view whose per-replica matrices are contiguous (batched matmuls take it
    as it is).
    """
    chunk, batch = streams[0].chunk, streams[0].batch_size
    stacked: list[torch.Tensor] = []
    for k, stream in enumerate(streams):
        for i, tensor in enumerate(stream._chunk(index)):
            if k == 0:
                size = (len(streams), chunk, batch, *tensor.shape[1:])
                stacked.append(torch.empty(size, dtype=tensor.dtype))
            stacked[i][k].view(tensor.shape).copy_(tensor)
    return tuple(stacked)


class StackedBatches:
    """Iterate ``(R, batch, ...)`` training batches of ``streams``, from each stream's first batch.

    ``prefetch=True`` draws the next chunk in a background thread. The streams must share batch size
    and chunk length (they do: one config, different seeds). Close the iterator (``it.close()``, or let
    it be garbage-collected) to stop the thread.
    """

    def __init__(self, streams: Sequence[BatchStream], prefetch: bool = True, device="cpu") -> None:
        if len({(s.batch_size, s.chunk) for s in streams}) != 1:
            raise ValueError("all replica streams must share batch_size and chunk")
        self.streams = list(streams)
        self.prefetch = prefetch
        self.device = torch.device(device)

    def _chunks(self) -> Iterator[tuple[torch.Tensor, ...]]:
        if not self.prefetch:
            index = 0
            while True:
                yield stack_chunk(self.streams, index)
                index += 1
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replica-data")
        try:
            upcoming = pool.submit(stack_chunk, self.streams, 0)
            index = 1
            while True:
                current = upcoming.result()
                upcoming = pool.submit(stack_chunk, self.streams, index)
                index += 1
                yield current
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        chunk_len = self.streams[0].chunk
        for tensors in self._chunks():
            tensors = tuple(t.to(self.device, non_blocking=True) for t in tensors)
            for i in range(chunk_len):
                yield tuple(t[:, i] for t in tensors)
            del tensors  # release this chunk before the next one is requested (two at most in memory)
