"""``replica_compile``: the replica engine's training step and its evaluation through ``torch.compile``.

The models are tiny, so an eager replica step is a few hundred small kernels (the NMU's bounded product
alone is about 25); inductor fuses them into a handful of C++ loops. The training step is one graph where
the run allows it (``fused_step``: loss, gradient, optimiser and projection); otherwise (gradient
clipping, an optimiser other than Adam) the loss's forward and backward are compiled and the optimiser
steps eagerly. docs/replicas.md and BENCHMARKS.md give the measured speed-up.

Compiled code rounds differently from eager code (fused reductions sum in another order), so a compiled
replica equals its plain run to float32 rounding per step, not bitwise; over a long run two such
trajectories can part where training is chaotic. ``replica_compile=false`` keeps the bitwise guarantee.

Inductor caches its compiled libraries on disk and loads them as code, so the cache is kept in the
project's owner-only cache directory (``fast_uniform``'s, checked the same way), never in the shared
temporary directory that inductor uses by default; an explicit ``TORCHINDUCTOR_CACHE_DIR`` is respected.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable

import torch

COMPILE_MODES = ("auto", "true", "false")
#: compiled replica runs per process (dynamo compiles the shared code once per run)
RECOMPILE_LIMIT = 512


def c_compiler_available() -> bool:
    """Whether inductor's CPU code generation can run (it needs a C++ compiler)."""
    return any(shutil.which(name) for name in (os.environ.get("CXX") or "g++", "c++", "clang++"))


def resolve(mode: str, device: str) -> bool:
    """``replica_compile`` as a bool: ``auto`` compiles where a C++ compiler (CPU) or CUDA is there."""
    if mode == "auto":
        return torch.device(device).type == "cuda" or c_compiler_available()
    return mode == "true"


def use_private_cache() -> None:
    """Point inductor's code cache at ``<nalu-suite cache>/inductor`` (owner-only), or at a fresh private
    directory where that cache cannot be trusted, unless the user chose ``TORCHINDUCTOR_CACHE_DIR``."""
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return
    from nalu_suite.fast_uniform import _cache_dir, _trusted

    base = _cache_dir()
    directory = None
    if base is not None:
        candidate = base / "inductor"
        try:
            candidate.mkdir(mode=0o700, exist_ok=True)
        except OSError:
            candidate = None
        if candidate is not None and _trusted(candidate, directory=True):
            directory = str(candidate)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = directory or tempfile.mkdtemp(prefix="nalu-inductor-")


def compile_fn(fn: Callable) -> Callable:
    """``fn`` through ``torch.compile`` (one graph, static shapes), its code cached privately."""
    import torch._dynamo

    use_private_cache()
    # every ReplicaRun (a table trains one per unit in one process) is a new closure over the same code,
    # so dynamo compiles that code once per run: allow many more than its default of 8
    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, RECOMPILE_LIMIT)
    config.accumulated_recompile_limit = max(config.accumulated_recompile_limit, 16 * RECOMPILE_LIMIT)
    return torch.compile(fn, fullgraph=True, dynamic=False)
