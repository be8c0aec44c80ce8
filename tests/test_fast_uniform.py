"""The compiled uniform kernel draws exactly what torch's ``uniform_`` draws, or is not used."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import torch

from nalu_suite import fast_uniform

needs_compiler = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) on this machine")


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """The module as if never loaded, with its cache in tmp_path; restored after the test."""
    monkeypatch.setattr(fast_uniform, "_kernel", None)
    monkeypatch.setattr(fast_uniform, "_reason", "not loaded yet")
    monkeypatch.setenv("NALU_SUITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NALU_SUITE_NATIVE", raising=False)
    return tmp_path


def draws_both_ways(seed: int, sizes, low: float, high: float, used: int = 0):
    """(ours, torch's) pieces drawn from twin generators, and the twins themselves."""
    ours, theirs = (torch.Generator().manual_seed(seed) for _ in range(2))
    for g in (ours, theirs):
        torch.empty(used).uniform_(generator=g)
    mine = [fast_uniform.uniform_(torch.empty(n), low, high, ours) for n in sizes]
    expected = [torch.empty(n).uniform_(low, high, generator=theirs) for n in sizes]
    return mine, expected, ours, theirs


@needs_compiler
@pytest.mark.parametrize(
    ("seed", "used", "low", "high"),
    [
        (0, 0, 1.0, 2.0),
        (2**62 + 3, 7, -1.5, 2.25),
        (123456789, 623, 2.0, 6.0),
        (5, 624, 0.1, 0.7),
        (8, 3, 1.0, 1.0 + 2.0**-23),  # one float apart: draws that round up to `high` become `low`
    ],
)
def test_compiled_kernel_draws_torchs_values_and_leaves_its_state(seed, used, low, high):
    sizes = [5, 619, 1, 624, 0, 1248, 10_000, 3]  # pieces that start and end on and off the twists
    mine, expected, ours, theirs = draws_both_ways(seed, sizes, low, high, used)
    assert fast_uniform.backend() == "compiled"
    for a, b in zip(mine, expected, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(ours.get_state(), theirs.get_state())
    # and the generator goes on exactly as torch's would, in torch's own kernels
    assert torch.equal(torch.randn(7, generator=ours), torch.randn(7, generator=theirs))


@needs_compiler
def test_a_draw_that_rounds_up_to_high_becomes_low_as_in_torch():
    # seed 63's draw 838,226 on U[1, 2) rounds to 2.0 before torch's correction (found in a training run)
    ours, theirs = (torch.Generator().manual_seed(63) for _ in range(2))
    x = fast_uniform.uniform_(torch.empty(1_000_000), 1.0, 2.0, ours)
    assert fast_uniform.backend() == "compiled"
    assert torch.equal(x, torch.empty(1_000_000).uniform_(1.0, 2.0, generator=theirs))
    assert x[838_226] == 1.0 and x.max() < 2.0


@needs_compiler
def test_second_load_reuses_the_cached_library(fresh, monkeypatch):
    assert fast_uniform.backend() == "compiled"
    libraries = list((fresh / "cache").glob("fast_uniform-*.so"))
    assert len(libraries) == 1
    monkeypatch.setattr(fast_uniform, "_kernel", None)
    monkeypatch.setattr(fast_uniform, "_reason", "not loaded yet")

    def no_compiler(*args, **kwargs):
        raise AssertionError("compiled again")

    monkeypatch.setattr(subprocess, "run", no_compiler)
    assert fast_uniform.backend() == "compiled"


def test_without_a_compiler_it_falls_back_to_torch_with_the_same_values(fresh, monkeypatch):
    monkeypatch.setenv("CC", str(fresh / "no-such-compiler"))
    mine, expected, ours, theirs = draws_both_ways(3, [100, 700], 1.0, 2.0)
    assert fast_uniform.backend().startswith("torch (cannot run the C compiler")
    assert "no-such-compiler" in fast_uniform.backend()
    assert all(torch.equal(a, b) for a, b in zip(mine, expected, strict=True))
    assert torch.equal(ours.get_state(), theirs.get_state())


def test_native_off_by_environment(fresh, monkeypatch):
    monkeypatch.setenv("NALU_SUITE_NATIVE", "0")
    assert fast_uniform.backend() == "torch (NALU_SUITE_NATIVE=0)"
    assert not (fresh / "cache").exists()  # nothing compiled


@needs_compiler
def test_a_kernel_that_disagrees_with_torch_is_not_used(fresh, monkeypatch):
    wrong = fresh / "fast_uniform.c"  # the twist matrix changed by one bit
    wrong.write_text(fast_uniform.SOURCE.read_text().replace("0x9908b0dfu", "0x9908b0deu"))
    monkeypatch.setattr(fast_uniform, "SOURCE", wrong)
    mine, expected, _, _ = draws_both_ways(11, [2000], -3.0, 7.0)
    assert fast_uniform.backend() == (
        "torch (the compiled kernel's draws differ from torch's uniform_ on this torch)"
    )
    assert torch.equal(mine[0], expected[0])


@pytest.mark.parametrize(
    "make",
    [
        lambda: torch.empty(40, 6)[:, :3],  # not contiguous
        lambda: torch.empty(50, dtype=torch.float64),
        lambda: torch.empty(50, dtype=torch.bfloat16),
    ],
)
def test_tensors_the_kernel_does_not_take_are_drawn_by_torch(make):
    ours, theirs = (torch.Generator().manual_seed(9) for _ in range(2))
    a = fast_uniform.uniform_(make(), -2.0, 5.0, ours)
    b = make().uniform_(-2.0, 5.0, generator=theirs)
    assert torch.equal(a, b)
    assert torch.equal(ours.get_state(), theirs.get_state())


def test_an_empty_range_is_refused_as_torch_refuses_it():
    with pytest.raises(RuntimeError, match="from=2.* to=1"):
        fast_uniform.uniform_(torch.empty(10), 2.0, 1.0, torch.Generator().manual_seed(0))


def test_torch_kernel_block_draws_with_torch_then_restores_the_kernel(monkeypatch):
    calls = []
    monkeypatch.setattr(fast_uniform, "_fill_from_state", lambda *args: calls.append(args))
    monkeypatch.setattr(fast_uniform, "_load", lambda: ("kernel", 1))
    g = torch.Generator().manual_seed(4)
    with fast_uniform.torch_kernel():
        x = fast_uniform.uniform_(torch.empty(100), 0.0, 1.0, g)
    assert not calls
    assert torch.equal(x, torch.empty(100).uniform_(0.0, 1.0, generator=torch.Generator().manual_seed(4)))
    fast_uniform.uniform_(torch.empty(100), 0.0, 1.0, g)
    assert len(calls) == 1


# ---- loading only a library this process can trust (issue 18) --------------------------------------

PLANTED_SOURCE = """
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen("%s", "w");
    if (f) fclose(f);
}
"""


def plant(path, marker):
    """A shared library at ``path`` whose loading (its constructor) creates ``marker``."""
    source = path.parent / "planted.c"
    source.write_text(PLANTED_SOURCE % marker)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(path), str(source)], check=True)
    source.unlink()
    path.chmod(0o755)


def cached_name():
    return f"fast_uniform-{fast_uniform._cache_key(['cc'])}.so"


@pytest.fixture
def loads(monkeypatch):
    """The paths ``ctypes.CDLL`` opens during the test."""
    import ctypes

    opened, real = [], ctypes.CDLL

    def spy(name, *args, **kwargs):
        opened.append(str(name))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(ctypes, "CDLL", spy)
    return opened


def planting_works_at_all(tmp_path):
    """The planted library does create its marker when loaded (else the tests below prove nothing)."""
    import ctypes

    probe, marker = tmp_path / "probe.so", tmp_path / "probe-marker"
    plant(probe, marker)
    ctypes.CDLL(str(probe))
    return marker.exists()


@needs_compiler
def test_a_library_at_the_old_shared_temp_path_is_never_loaded(fresh, monkeypatch, loads):
    assert planting_works_at_all(fresh)
    monkeypatch.delenv("CC", raising=False)
    shared = fresh / "shared-tmp"  # stands for /tmp, where anyone may write
    shared.mkdir()
    monkeypatch.setattr(fast_uniform.tempfile, "tempdir", str(shared))
    blocker = fresh / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("NALU_SUITE_CACHE", str(blocker / "cache"))  # cannot be created
    marker = fresh / "planted-ran"
    plant(shared / cached_name(), marker)  # the name the old code fell back to
    with pytest.warns(RuntimeWarning, match="cannot be created"):
        assert fast_uniform.backend() == "compiled"
    assert not marker.exists()
    assert str(shared / cached_name()) not in loads
    assert [p.name for p in shared.iterdir()] == [cached_name()]  # the private build dir is gone
    mine, expected, _, _ = draws_both_ways(5, [1000], 0.0, 1.0)
    assert torch.equal(mine[0], expected[0])


@needs_compiler
def test_a_cache_directory_others_may_write_is_not_used(fresh, monkeypatch, loads):
    monkeypatch.delenv("CC", raising=False)
    cache = fresh / "cache"
    cache.mkdir()
    cache.chmod(0o777)
    marker = fresh / "planted-ran"
    plant(cache / cached_name(), marker)
    with pytest.warns(RuntimeWarning, match="not owned by this user alone"):
        assert fast_uniform.backend() == "compiled"
    assert not marker.exists()
    assert not any(p.startswith(str(cache)) for p in loads)
    assert sorted(p.name for p in cache.iterdir()) == [cached_name()]  # nothing written there either


@needs_compiler
@pytest.mark.parametrize("how", ["group-writable", "world-writable", "owned by another user", "a directory"])
def test_an_untrusted_cached_library_is_compiled_afresh_not_loaded(fresh, monkeypatch, loads, how):
    import os

    monkeypatch.delenv("CC", raising=False)
    cache = fresh / "cache"
    cache.mkdir(mode=0o700)
    library, marker = cache / cached_name(), fresh / "planted-ran"
    if how == "a directory":
        library.mkdir()
    else:
        plant(library, marker)
        library.chmod({"group-writable": 0o775, "world-writable": 0o757}.get(how, 0o755))
    if how == "owned by another user":
        real_stat, me = os.stat, os.getuid()

        def stat_as_if_another_owned(path, *args, **kwargs):
            info = real_stat(path, *args, **kwargs)
            if str(path) == str(library):
                fields = list(info)
                fields[4] = me + 1  # st_uid
                return os.stat_result(fields)
            return info

        monkeypatch.setattr(os, "stat", stat_as_if_another_owned)
    if how == "a directory":
        # os.replace cannot put a file over a directory: the compile fails and torch's kernel is used
        assert fast_uniform.backend().startswith(f"torch (cannot write the compiled kernel to {library}")
        assert loads == []
        assert [p.name for p in cache.iterdir()] == [library.name]  # no partial build left behind
        return
    assert fast_uniform.backend() == "compiled"
    assert not marker.exists()
    assert loads == [str(library)]  # the fresh build, moved over the untrusted file
    assert library.stat().st_mode & 0o777 == 0o755


@needs_compiler
def test_the_cache_is_private_and_its_library_trusted_even_under_umask_0(fresh, monkeypatch):
    import os

    monkeypatch.delenv("CC", raising=False)
    previous = os.umask(0)
    try:
        assert fast_uniform.backend() == "compiled"
    finally:
        os.umask(previous)
    cache = fresh / "cache"
    assert cache.stat().st_mode & 0o777 == 0o700
    (library,) = cache.glob("fast_uniform-*.so")
    assert library.stat().st_mode & 0o022 == 0
    # a second process reuses it without compiling
    monkeypatch.setattr(fast_uniform, "_kernel", None)
    monkeypatch.setattr(fast_uniform, "_reason", "not loaded yet")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("compiled again"))
    assert fast_uniform.backend() == "compiled"
