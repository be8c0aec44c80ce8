"""``x.uniform_(low, high, generator=g)``, bit for bit, about 6x faster: torch's MT19937 in a compiled loop.

The replicas of the arithmetic tasks draw 1.28 million uniforms per step (R = 100 seeds of the static
task), each seed from its own ``torch.Generator`` so that it reads exactly the data of its plain run.
torch's CPU kernel draws them one element at a time (about 2.9 ns each on this project's machine), which
made drawing, not training, the bound on the replicas' speed. ``fast_uniform.c`` runs the same generator
(MT19937, the same tempering and float conversion) in one loop the compiler vectorises, reading and
writing the generator's state through ``get_state``/``set_state``, so the values *and* the generator's
state afterwards are torch's own.

The kernel is compiled with the machine's C compiler (``$CC``, else ``cc``) on first use and cached under
``$NALU_SUITE_CACHE`` (default ``~/.cache/nalu-suite``, created owner-only), keyed by the source, compiler
and CPU. A cached library is loaded only if it can be trusted: the cache directory and the file are owned
by the current user and writable by no one else (group and others), and the file is a regular file. A
cached file that fails the check is compiled afresh and replaced; a cache directory that fails it (or
cannot be created) is not used at all: the kernel is compiled into a fresh private directory
(``tempfile.mkdtemp``, mode 0700), loaded and the directory removed (a warning says why). No file at a
predictable shared path is ever loaded. Before it is used, the kernel's draws are compared with torch's
on probe generators; if they differ (a torch that changed its generator or the layout of its state), or
there is no compiler, or ``NALU_SUITE_NATIVE=0`` is set, ``uniform_`` falls back to torch's kernel: slower,
never different. ``backend()`` says which is in use.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import math
import os
import platform
import shlex
import shutil
import stat
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

SOURCE = Path(__file__).with_suffix(".c")
STATE_WORDS = 624  # MT19937's state
# torch's CPU generator state (CPUGeneratorImplState): int64 seed, int32 left, int32 seeded,
# uint64 next, uint64 state[624], ...; ``left - 1`` words remain before the next twist
_LEFT, _NEXT, _WORDS = slice(8, 12), slice(16, 24), slice(24, 24 + 8 * STATE_WORDS)
_FLAG_ATTEMPTS = (["-O3", "-march=native"], ["-O3"])
_FLOAT_MAX = float(torch.finfo(torch.float32).max)

_lock = threading.Lock()
_kernel = None  # (fill_uniform, fused) once loaded and checked
_reason = "not loaded yet"
_torch_only = False  # set inside torch_kernel()


def uniform_(x: torch.Tensor, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """Fill ``x`` in place with ``U[low, high)`` draws from ``generator``: exactly ``x.uniform_(low, high,
    generator=generator)``, values and the generator's state after, but in the compiled kernel when ``x``
    is a contiguous float32 CPU tensor and the kernel is available (else in torch). A generator must not
    be used by two threads at once."""
    low, high = float(low), float(high)
    usable = (
        x.dtype == torch.float32
        and x.device.type == "cpu"
        and generator.device.type == "cpu"
        and x.is_contiguous()
        and math.isfinite(low)
        and math.isfinite(high)
        and low <= high
        and high - low <= _FLOAT_MAX
    )
    if not usable or x.numel() == 0 or _torch_only or _load() is None:
        return x.uniform_(low, high, generator=generator)
    fill, fused = _kernel
    _fill_from_state(fill, fused, x, low, high, generator)
    return x


def backend() -> str:
    """Which kernel ``uniform_`` uses: ``"compiled"``, or ``"torch (<why>)"``."""
    return "compiled" if _load() is not None else f"torch ({_reason})"


@contextlib.contextmanager
def torch_kernel():
    """Within this block ``uniform_`` uses torch's kernel (to time the two side by side)."""
    global _torch_only
    previous, _torch_only = _torch_only, True
    try:
        yield
    finally:
        _torch_only = previous


def _fill_from_state(fill, fused: int, x: torch.Tensor, low: float, high: float, g: torch.Generator) -> None:
    state = g.get_state()  # a copy, as uint8
    raw = state.numpy()
    left = int(raw[_LEFT].view(np.int32)[0])
    words64 = raw[_WORDS].view(np.uint64)
    words = words64.astype(np.uint32)
    position = np.array([STATE_WORDS + 1 - left], dtype=np.int32)
    fill(
        words.ctypes.data,
        position.ctypes.data,
        x.data_ptr(),
        x.numel(),
        ctypes.c_float(low),
        ctypes.c_float(high),
        fused,
    )
    words64[:] = words
    p = int(position[0])
    raw[_LEFT].view(np.int32)[0] = STATE_WORDS + 1 - p
    raw[_NEXT].view(np.uint64)[0] = p
    g.set_state(state)


def _load():
    """The checked kernel, loading (and compiling) it on first use; ``None`` if unavailable."""
    global _kernel, _reason
    if _reason != "not loaded yet":
        return _kernel
    with _lock:
        if _reason != "not loaded yet":
            return _kernel
        try:
            _kernel = _load_checked()
            _reason = ""
        except Exception as err:  # no compiler, a failed compile or check: torch's kernel, same values
            _reason = str(err) or type(err).__name__
    return _kernel


def _load_checked():
    if os.environ.get("NALU_SUITE_NATIVE", "1") == "0":
        raise RuntimeError("NALU_SUITE_NATIVE=0")
    fill = _open_library().fill_uniform
    fill.restype = None
    fill.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64, ctypes.c_float, ctypes.c_float, ctypes.c_int]
    for fused in (1, 0):  # torch's kernel uses an fma where it was compiled for FMA hardware
        if _agrees_with_torch(fill, fused):
            return fill, fused
    raise RuntimeError("the compiled kernel's draws differ from torch's uniform_ on this torch")


def _agrees_with_torch(fill, fused: int) -> bool:
    """Draw with the kernel and with torch from twin probe generators (fresh and part-used, crossing
    several twists, with ranges whose width is and is not a power of two, and one where draws round up
    to ``high``, which torch turns into ``low``); compare values and states."""
    for seed, used, n, (low, high) in [
        (12345, 0, 1500, (-3.0, 7.0)),
        (2**40 + 7, 623, 2000, (0.1, 0.7)),
        (7, 5, 624, (1.0, 2.0)),
        (3, 1, 700, (1.0, 1.0 + 2.0**-23)),  # one float apart: half the draws round up to 2 ** -23 + 1
    ]:
        ours, theirs = (torch.Generator().manual_seed(seed) for _ in range(2))
        for g in (ours, theirs):
            torch.empty(used).uniform_(generator=g)
        x = torch.empty(n)
        _fill_from_state(fill, fused, x, low, high, ours)
        expected = torch.empty(n).uniform_(low, high, generator=theirs)
        if not (torch.equal(x, expected) and torch.equal(ours.get_state(), theirs.get_state())):
            return False
    return True


def _open_library() -> ctypes.CDLL:
    """The kernel's shared library, opened: the trusted cached copy, else one compiled just now (into the
    cache if the cache directory can be trusted, else into a private directory removed after loading)."""
    compiler = shlex.split(os.environ.get("CC") or "cc")
    name = f"fast_uniform-{_cache_key(compiler)}.so"
    cache = _cache_dir()
    if cache is not None:
        library = cache / name
        if not _trusted(library, directory=False):  # missing, or not ours alone: compile, replacing it
            _compile(compiler, cache, library)
        return ctypes.CDLL(str(library))
    private = Path(tempfile.mkdtemp(prefix="nalu-suite-"))  # new, random name, mode 0700
    try:
        library = private / name
        _compile(compiler, private, library)
        return ctypes.CDLL(str(library))  # the mapping outlives the file
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _cache_key(compiler: list[str]) -> str:
    """What the compiled library depends on: the source, the compiler and the CPU."""
    parts = [SOURCE.read_bytes(), " ".join(compiler).encode(), platform.machine().encode(), _cpu_flags()]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


def _cache_dir() -> Path | None:
    """The cache directory, created owner-only if missing; ``None`` (with a warning) if it cannot be
    created or is not trusted (then nothing in it is loaded or written)."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nalu-suite"
    cache = Path(os.environ.get("NALU_SUITE_CACHE") or default)
    try:
        cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        problem = f"cannot be created ({err.strerror or type(err).__name__})"
    else:
        if _trusted(cache, directory=True):
            return cache
        problem = "is not owned by this user alone (it must be yours and not group/world-writable)"
    warnings.warn(
        f"fast_uniform: the kernel cache {cache} {problem}; compiling into a private temporary directory "
        "instead (set NALU_SUITE_CACHE to a directory of yours with mode 0700 to cache it)",
        RuntimeWarning,
        stacklevel=2,
    )
    return None


def _trusted(path: Path, directory: bool) -> bool:
    """Whether ``path`` is a directory (or regular file) owned by the current user that neither its group
    nor others may write: only then may what it holds (or it) be loaded as code."""
    getuid = getattr(os, "getuid", None)
    if getuid is None:  # no POSIX owners (Windows): trust no cache
        return False
    try:
        info = os.stat(path)
    except OSError:
        return False
    kind = stat.S_ISDIR if directory else stat.S_ISREG
    writable_by_others = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    return kind(info.st_mode) and info.st_uid == getuid() and not writable_by_others


def _compile(compiler: list[str], directory: Path, library: Path) -> None:
    """Compile the kernel into ``library`` (in ``directory``, a trusted one): written under a fresh name,
    made owner-writable only, then moved into place atomically (parallel runs may compile at once)."""
    failures = []
    for flags in _FLAG_ATTEMPTS:
        fd, partial = tempfile.mkstemp(suffix=".so", dir=directory)
        os.close(fd)
        command = [*compiler, *flags, "-ffp-contract=off", "-shared", "-fPIC", "-o", partial, str(SOURCE)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as err:
            Path(partial).unlink(missing_ok=True)
            raise RuntimeError(f"cannot run the C compiler {compiler[0]!r}: {err}") from None
        if done.returncode == 0:
            try:
                os.chmod(partial, 0o755)  # the linker's mode follows the umask: no group/world write
                os.replace(partial, library)
            except OSError as err:
                Path(partial).unlink(missing_ok=True)
                raise RuntimeError(f"cannot write the compiled kernel to {library}: {err}") from None
            return
        Path(partial).unlink(missing_ok=True)
        failures.append(f"{shlex.join(command)}: {done.stderr.strip()[-300:]}")
    raise RuntimeError("compiling the kernel failed: " + " | ".join(failures))


def _cpu_flags() -> bytes:
    """The CPU's feature flags (``-march=native`` code must not run on another CPU)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line.encode()
    except OSError:
        pass
    return platform.processor().encode()
