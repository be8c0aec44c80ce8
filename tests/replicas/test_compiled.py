"""``replica_compile``: the replica loss through ``torch.compile`` trains the replicas of the eager run."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from nalu_suite.replicas import ReplicaRun, compiled, replica_settings, train_replicas
from nalu_suite.units._numerics import bounded_prod


@pytest.fixture
def configure(make_cfg, every_step_path):
    """A 3-replica run through every code path of a step, in 60 steps, written to ``out``."""

    def _configure(*overrides: str, out: str):
        cfg = make_cfg(*every_step_path(60, 20, 0.003, (20, 40)), "replicas=3", *overrides)
        with open_dict(cfg):
            cfg.paths.output_dir = str(Path(cfg.paths.output_dir).parent / out)
        return cfg

    return _configure


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A fresh nalu-suite cache; inductor's cache directory chosen anew by the code under test."""
    monkeypatch.setenv("NALU_SUITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    return tmp_path / "cache"


def test_a_compiled_run_trains_the_eager_runs_replicas_to_float32_rounding(configure, private_cache):
    """Every code path of a step with the loss compiled: the same solved_at and metrics as eager to
    float32 rounding, not bit for bit."""
    eager = train_replicas(configure("replica_compile=false", out="eager"))
    fused = train_replicas(configure("replica_compile=true", out="fused"))

    assert not eager["compiled"] and eager["compile_s"] == 0
    assert fused["compiled"] and fused["compile_s"] > 0  # both losses (with and without the regulariser)
    for e, c in zip(eager["replicas"], fused["replicas"], strict=True):
        assert c["seed"] == e["seed"]
        for key in ("val/mse", "test/interp/mse", "test/extrap/mse", "sparsity_error", "train/loss"):
            assert c[key] == pytest.approx(e[key], rel=1e-3, abs=1e-6), key
    # inductor's libraries were written to the private cache, owner-only, not the shared /tmp default
    inductor = private_cache / "inductor"
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(inductor)
    assert stat.S_IMODE(inductor.stat().st_mode) == 0o700 and any(inductor.iterdir())


def test_the_compiled_bounded_product_keeps_its_gradient_at_zero_factors(private_cache):
    """Under ``vmap`` dynamo would differentiate the product's forward instead of its backward, which
    loses the gradient of a zero factor (the product of the others); the compiled replica loss must
    give the eager gradient everywhere: ordinary, one zero, two zeros, clamped, overflowing products."""
    rows = [[0.0, 3.0], [2.0, -5.0], [0.0, 0.0], [1e7, 1e7], [3e20, 2e20], [-0.5, 4.0]]
    f = torch.tensor([rows, rows[::-1]])  # (2 replicas, 6, 2)

    def loss(factors):
        return (bounded_prod(factors) * torch.arange(1.0, 7.0)).sum()

    per_replica = torch.vmap(loss)
    grads = []
    for fn in (per_replica, compiled.compile_fn(per_replica)):
        leaf = f.clone().requires_grad_(True)
        fn(leaf).sum().backward()
        grads.append(leaf.grad)
    assert grads[0][0, 0].tolist() == [3.0, 0.0]  # the zero factor's gradient: the other factor
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-6, atol=0)


def test_compiled_inalu_takes_the_eager_steps_on_signed_inputs(make_cfg, private_cache):
    """Compiled, iNALU's three products of its inputs are fused sums (``_numerics.fused_linear``), not
    matrix products: on inputs with negative and exactly-zero entries (its sign retrieval's cases) its
    loss and weights follow the eager run's over a few steps, to float32 rounding."""
    overrides = ["task=static_arith", "task.op=mul", "unit=inalu", "task.eval_size=20", "batch_size=16"]
    runs = []
    for mode in ("false", "true"):
        cfg = make_cfg(*overrides, "replicas=2", f"replica_compile={mode}")
        runs.append(ReplicaRun(cfg, replica_settings(cfg)))
    stream = iter(runs[0].batches)
    x, y = next(stream)
    stream.close()
    x = 0.8 * x  # |x| in [0.8, 1.6]: the log path's exponent stays below omega, where it has a gradient
    x[..., ::2, 7] *= -1  # one negative input in every sample, one exactly zero in every fourth
    x[..., 1::2, 9] *= -1
    x[..., ::4, 5] = 0
    start = {name: value.detach().clone() for name, value in runs[0].model.params.items()}
    for _ in range(5):
        for run in runs:
            run.train_step((x, y))
    eager, fused = runs
    torch.testing.assert_close(fused.last_loss, eager.last_loss, rtol=1e-4, atol=0)
    for name, value in eager.model.params.items():
        assert not torch.equal(value, start[name]), name  # every weight trained
        torch.testing.assert_close(fused.model.params[name], value, rtol=1e-4, atol=1e-6)


def test_the_compiled_evaluation_runs_the_units_evaluation_forward(make_cfg, every_step_path, private_cache):
    """Evaluation is compiled too: its metrics equal the eager ones, in evaluation mode (the NRU's
    ``|W|`` is ``tanh(1000 W) ** 2`` in training, far from ``|W|`` at its initial weights)."""
    overrides = [o if o != "unit=nmu" else "unit=nru" for o in every_step_path(60, 30, 0.01, (20, 40))]
    logged = []
    for mode in ("false", "true"):
        cfg = make_cfg(*overrides, "replicas=2", f"replica_compile={mode}")
        logged.append(ReplicaRun(cfg, replica_settings(cfg)).evaluate("val"))
    for eager, fused in zip(*logged, strict=True):
        assert fused.keys() == eager.keys()
        for key, value in eager.items():
            assert fused[key] == pytest.approx(value, rel=1e-4, abs=1e-7), key


def test_an_untrusted_cache_keeps_inductor_out_of_it(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could plant a library here
    monkeypatch.setenv("NALU_SUITE_CACHE", str(shared))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    with pytest.warns(RuntimeWarning, match="not owned by this user alone"):
        compiled.use_private_cache()
    chosen = os.environ["TORCHINDUCTOR_CACHE_DIR"]
    assert not chosen.startswith(str(shared))
    assert stat.S_IMODE(os.stat(chosen).st_mode) == 0o700  # a fresh mkdtemp


def test_a_chosen_inductor_cache_is_respected(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    compiled.use_private_cache()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")


def test_auto_compiles_where_code_generation_can_run(monkeypatch):
    assert compiled.resolve("true", "cpu") and not compiled.resolve("false", "cuda")
    monkeypatch.setattr(compiled.shutil, "which", lambda name: None)  # no C++ compiler
    assert not compiled.resolve("auto", "cpu")
    assert compiled.resolve("auto", "cuda")  # CUDA code generation needs no host C++ compiler here
    monkeypatch.setattr(compiled.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert compiled.resolve("auto", "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_replicas_train_on_cuda_as_on_the_cpu(configure):
    cpu = train_replicas(configure("replica_compile=false", out="cpu"))
    gpu = train_replicas(configure("replica_compile=auto", "trainer=gpu", out="gpu"))
    for c, g in zip(cpu["replicas"], gpu["replicas"], strict=True):
        assert g["test/extrap/mse"] == pytest.approx(c["test/extrap/mse"], rel=1e-2)
