"""Forward + backward time of R stacked linear layers under ``vmap``: ``F.linear`` against the units' layout.

    python scripts/bench_linear_layout.py                      # R=100, batch 128, 100 -> 2 (the static task)
    python scripts/bench_linear_layout.py --replicas 10 --outputs 8

The replica engine (``replicas=R``) runs each unit under ``torch.func.vmap`` over stacked weights, so a
layer ``x @ W^T`` becomes a batched matmul. Its speed depends on the memory layout PyTorch picks for the
product and for the weight gradient. ``nalu_suite.units._numerics.linear`` computes ``(W @ x^T)^T`` for
2-D inputs; this script times both in one process, alternating, on one torch thread, and prints the
median milliseconds per forward + backward pass and the largest difference of the outputs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.func import vmap

from nalu_suite.units._numerics import linear


def time_pass(fn, x: torch.Tensor, weight: torch.Tensor, repeats: int) -> float:
    """Median ms of ``vmap(fn)(x, weight)`` forward + backward of a squared sum."""
    times = []
    for _ in range(repeats):
        weight.grad = None
        started = time.perf_counter()
        vmap(fn)(x, weight).pow(2).sum().backward()
        times.append(time.perf_counter() - started)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--inputs", type=int, default=100)
    parser.add_argument("--outputs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.rand(args.replicas, args.batch, args.inputs)
    weight = torch.rand(args.replicas, args.outputs, args.inputs, requires_grad=True)
    candidates = {"F.linear(x, W)": F.linear, "(W @ x^T)^T (units)": linear}
    for fn in candidates.values():  # warm-up
        time_pass(fn, x, weight, 10)
    results = {name: [] for name in candidates}
    for _ in range(5):  # alternate, so load on a shared machine hits both alike
        for name, fn in candidates.items():
            results[name].append(time_pass(fn, x, weight, args.repeats // 5))
    with torch.no_grad():
        diff = (vmap(F.linear)(x, weight) - vmap(linear)(x, weight)).abs().max().item()
    print(
        f"R={args.replicas}, batch {args.batch}, {args.inputs} -> {args.outputs}, one thread; "
        "median ms per forward + backward:"
    )
    for name, values in results.items():
        print(f"  {name:22s} {statistics.median(values):7.3f} ms")
    print(f"  largest output difference: {diff:.3g}")


if __name__ == "__main__":
    main()
