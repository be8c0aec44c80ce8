"""The training streams of R seeds, stacked: one ``(R, batch, ...)`` batch per step.

Replica ``k`` reads exactly the batches of its own plain run: the same ``BatchStream`` (same sampler,
batch size, seed and chunk generators). Drawing costs more than a step of the tiny models (R = 100
replicas of the static task: 1.28 million uniforms per step), so the next *block* of batches is
drawn while the training loop consumes the current one, by one of three ``prefetch`` modes:

* ``"process"`` (the default where the OS can ``fork``, on CPU): a forked worker process draws into
  two block buffers in anonymous shared memory. It does not share the trainer's GIL, which a thread
  does: the model step is many small, Python-driven kernels, and a drawing thread slowed it down
  (``scripts/bench_replicas.py`` compares the modes in BENCHMARKS.md).
* ``"thread"``: a background thread draws into the buffers (PyTorch releases the GIL inside kernels).
* ``"none"``: blocks are drawn in the training loop itself.

Blocks are small (``block`` = 10 steps: 50 MB per buffer for R = 100 replicas of the static
task, against 0.5 GB for a whole chunk of 100 steps), and their two buffers are allocated once and
reused, so no step pays for the page faults of a fresh buffer (2-4 ms per step at R = 100 when every
chunk was a new 0.5 GB tensor). This needs a *splittable* sampler, one that takes ``out=`` (see
``BatchStream``): each seed then draws its next ``block * batch`` samples from its chunk's generator
straight into its slot, with no copy. Other samplers are drawn a whole chunk at a time and copied.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import multiprocessing
import traceback
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from nalu_suite.data import BatchStream

PREFETCH_MODES = ("process", "thread", "none")


def default_prefetch(device="cpu") -> str:
    """``"process"`` where the OS can fork, the data stays on the CPU and this process may have children
    (a daemonic worker, e.g. of a ``multiprocessing.Pool``, may not); else ``"thread"``."""
    forkable = "fork" in multiprocessing.get_all_start_methods()
    allowed = not multiprocessing.current_process().daemon
    return "process" if forkable and allowed and torch.device(device).type == "cpu" else "thread"


class StackedBatches:
    """Iterate ``(R, batch, ...)`` training batches of ``streams``, from each stream's first batch.

    ``prefetch`` is one of ``PREFETCH_MODES`` (``True``: the default mode, ``False``: ``"none"``). The
    streams must share batch size and chunk length (they do: one config, different seeds). Close the
    iterator (``it.close()``, or let it be garbage-collected) to stop the worker.

    The batches are two reused buffers, filled in turn: a batch is valid until the consumer asks for the
    batch after the next one (then its buffer is filled again). Clone a batch to keep it.
    """

    def __init__(
        self,
        streams: Sequence[BatchStream],
        prefetch: bool | str = True,
        device="cpu",
        block: int = 10,
    ) -> None:
        if len({(s.batch_size, s.chunk) for s in streams}) != 1:
            raise ValueError("all replica streams must share batch_size and chunk")
        if prefetch is True:
            prefetch = default_prefetch(device)
        elif prefetch is False:
            prefetch = "none"
        if prefetch not in PREFETCH_MODES:
            raise ValueError(f"prefetch={prefetch!r}; valid choices: {', '.join(PREFETCH_MODES)}")
        self.streams = list(streams)
        self.prefetch = prefetch
        self.device = torch.device(device)
        chunk = self.streams[0].chunk
        splittable = all(s.splittable for s in self.streams)
        self.block = block if splittable and 0 < block <= chunk and chunk % block == 0 else chunk

    def _new_buffer(self, shared: bool = False) -> list[torch.Tensor]:
        """Empty ``(R, block, batch, ...)`` tensors, shaped and typed like one sample of the sampler;
        ``shared``: in anonymous shared memory, which a forked process writes and this one reads."""
        probe = self.streams[0].sample(torch.Generator().manual_seed(0), 1)
        size = (len(self.streams), self.block, self.streams[0].batch_size)
        if not shared:
            return [torch.empty(size + t.shape[1:], dtype=t.dtype) for t in probe]
        buffers = []
        for t in probe:
            shape = size + t.shape[1:]
            count = math.prod(shape)
            # mmap(-1, n) is anonymous MAP_SHARED memory: inherited by a forked child, and not bounded
            # by the size of /dev/shm (64 MB in a default Docker container) as share_memory_() is
            memory = mmap.mmap(-1, max(1, count * t.element_size()))
            buffers.append(torch.frombuffer(memory, dtype=t.dtype, count=count).view(shape))
        return buffers

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

        Block ``j + 1`` is drawn (in the background, unless ``prefetch="none"``) once block ``j - 1`` is
        used up, i.e. when the consumer asks for block ``j``'s first batch. The worker process (if any)
        starts here, not at the first ``next``: forking before the caller starts other threads is safer.
        """
        if self.prefetch == "process":
            return self._blocks_from_process()
        return self._blocks_in_this_process()

    def _blocks_in_this_process(self) -> Iterator[list[torch.Tensor]]:
        buffers = [self._new_buffer(), self._new_buffer()]
        generators: list[torch.Generator] = []
        j = 0
        if self.prefetch == "none":
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

    def _blocks_from_process(self) -> Iterator[list[torch.Tensor]]:
        """Start a forked worker process (``_draw_blocks``) and return the blocks it draws."""
        buffers = [self._new_buffer(shared=True), self._new_buffer(shared=True)]
        context = multiprocessing.get_context("fork")
        ours, theirs = context.Pipe()
        worker = context.Process(
            target=_draw_blocks, args=(self, buffers, theirs, ours), name="replica-data", daemon=True
        )
        worker.start()
        theirs.close()
        return self._receive_blocks(worker, ours, buffers)

    @staticmethod
    def _receive_blocks(worker, ours, buffers) -> Iterator[list[torch.Tensor]]:
        """Block ``j`` once the worker has drawn it; then ask it for block ``j + 1``."""

        def talk(*message):
            try:
                return ours.send(*message) if message else ours.recv()
            except (EOFError, OSError):  # OSError: BrokenPipeError, ConnectionResetError
                worker.join(timeout=1)
                raise RuntimeError(
                    f"the replica data process stopped unexpectedly (exit code {worker.exitcode}); "
                    "run with replica_data=thread to draw the data in this process"
                ) from None

        try:
            talk(0)
            j = 0
            while True:
                reply = talk()  # block j is drawn; the consumer is done with block j - 1
                if isinstance(reply, str):
                    raise RuntimeError(f"the replica data process failed:\n{reply}")
                talk(j + 1)  # into block j - 1's buffer, while the consumer trains on block j
                yield buffers[j % 2]
                j += 1
        finally:
            with contextlib.suppress(OSError):  # the worker may be gone already
                ours.send(None)
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
                worker.join()
            ours.close()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        return self._split(self._blocks())

    def _split(self, blocks: Iterator[list[torch.Tensor]]) -> Iterator[tuple[torch.Tensor, ...]]:
        """The batches of each block, in order, each copied out of its block into one of two reused
        contiguous buffers; closing this closes ``blocks`` (and its worker).

        In its block a batch is a strided view (the block holds each replica's batches one after
        another), which the compiled steps take much slower than a contiguous batch: the static table
        (ten units on each batch, R = 100) trained 33 steps/s per op on views and 39 on the copies,
        which cost about 0.5 ms a step (BENCHMARKS.md, "Contiguous batches")."""
        try:
            buffers: list[tuple[torch.Tensor, ...]] = []
            n = 0
            for tensors in blocks:
                tensors = tuple(t.to(self.device, non_blocking=True) for t in tensors)
                if not buffers:
                    buffers = [
                        tuple(
                            torch.empty_like(t[:, 0], memory_format=torch.contiguous_format) for t in tensors
                        )
                        for _ in range(2)
                    ]
                for i in range(self.block):
                    batch = buffers[n % 2]
                    n += 1
                    for buffer, t in zip(batch, tensors, strict=True):
                        buffer.copy_(t[:, i])
                    yield batch
        finally:
            blocks.close()


def _draw_blocks(stacked: StackedBatches, buffers, conn, parents_end) -> None:
    """The worker process of ``prefetch="process"``: for each block index ``j`` received, draw block
    ``j`` into ``buffers[j % 2]`` and send ``j`` back; ``None`` or a closed pipe ends it, an error is
    sent back as its traceback."""
    parents_end.close()  # so that the pipe reads as closed (EOFError) once the trainer is gone
    torch.set_num_threads(1)
    generators: list[torch.Generator] = []
    try:
        while (j := conn.recv()) is not None:
            stacked.draw_block(j, buffers[j % 2], generators)
            conn.send(j)
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass
    except BaseException:
        conn.send(traceback.format_exc())
    finally:
        conn.close()
