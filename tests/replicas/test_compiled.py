"""``replica_compile``: the replica loss through ``torch.compile`` trains the replicas of the eager run."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from nalu_suite.replicas import ReplicaRun, compiled, replica_settings, train_replicas
from nalu_suite.tasks import build_task
from nalu_suite.units._numerics import bounded_prod, linear
from nalu_suite.units.inalu import sign_retrieval


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


def test_the_compiled_sign_retrieval_takes_the_eager_values_and_gradients(private_cache):
    """Compiled, iNALU's sign retrieval sums each input's selected log factor instead of multiplying
    masks by a table (units/inalu.py): the same signs, exact zeros and weight gradients as eager on
    zero, negative and positive inputs, with the exactly-zero factors |W| = 1 at a zero input and
    |W| = 1/2 at a negative one."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=gen).round()  # about 40% zeros
    w = torch.rand(3, 6, generator=gen) * 2 - 1
    w[0, 0], w[1, 1] = 1.0, -0.5
    assert (x[:, 0] == 0).any() and (x[:, 1] < 0).any()
    results = []
    for fn in (sign_retrieval, compiled.compile_fn(sign_retrieval)):
        leaf = w.clone().requires_grad_(True)
        s = fn(x, leaf)
        (grad,) = torch.autograd.grad((s * torch.arange(1.0, 4.0)).sum(), leaf)
        results.append((s.detach(), grad))
    (eager, eager_grad), (fused, fused_grad) = results
    assert (eager < 0).any() and (eager > 0).any() and (eager == 0).any()
    assert torch.equal(fused == 0, eager == 0) and torch.equal(fused.sign(), eager.sign())
    torch.testing.assert_close(fused, eager, rtol=1e-6, atol=0)
    torch.testing.assert_close(fused_grad, eager_grad, rtol=1e-5, atol=1e-6)


# NALU's weights part by up to 4e-5 after these five steps, with matrix products as with fused sums:
# Adam's first steps (about lr * sign(g)) magnify rounding in its near-zero gradients
@pytest.mark.parametrize(
    ("unit", "weight_atol"), [("inalu", 1e-6), ("nalu", 1e-4), ("npu", 1e-6), ("realnpu", 1e-6)]
)
def test_compiled_units_take_the_eager_steps_on_signed_inputs(make_cfg, private_cache, unit, weight_atol):
    """Compiled, these units' products of their inputs are fused sums (``_numerics.fused_linear``), not
    matrix products, and iNALU's sign retrieval sums selected log factors: on inputs with negative and
    exactly-zero entries (the sign's cases) loss and weights follow the eager run's over a few steps,
    to float32 rounding."""
    overrides = ["task=static_arith", "task.op=mul", f"unit={unit}", "task.eval_size=20", "batch_size=16"]
    overrides.append("task.extrap_range=[-6,-2]")  # inputs not all > 0: iNALU keeps its sign retrieval
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
        torch.testing.assert_close(fused.model.params[name], value, rtol=1e-4, atol=weight_atol)


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


def test_compiling_the_evaluation_is_counted_as_warm_up_once(make_cfg, every_step_path, private_cache):
    """The first compiled evaluation compiles its graphs: that call's wall time goes to ``compile_s`` (the
    warm-up reported apart from training); evaluating again compiles nothing and adds nothing."""
    cfg = make_cfg(*every_step_path(60, 30, 0.01, (20, 40)), "replicas=2", "replica_compile=true")
    run = ReplicaRun(cfg, replica_settings(cfg))
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    started = time.perf_counter()
    run.evaluate("val")
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > graphs
    assert 0 < run.compile_s <= time.perf_counter() - started
    warm_up, graphs = run.compile_s, torch._dynamo.utils.counters["stats"]["unique_graphs"]
    run.evaluate("val")
    run.evaluate("test")  # the test sets have the validation sets' layout
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs
    assert run.compile_s == warm_up


def test_a_compiled_evaluation_measures_the_eager_baselines_for_all_replicas_at_once(
    make_cfg, private_cache, monkeypatch
):
    """Compiled, the random baselines (``Task.baseline_models``) run through the compiled evaluation on all
    R sets at once; no task measures its own (``fixed_set`` is not drawn again), and each replica's
    baseline is its eager one to rounding."""
    cfg = make_cfg(*FUSED_RUN, "task.baseline_draws=3", "replicas=3", "replica_compile=true")
    run = ReplicaRun(cfg, replica_settings(cfg))
    for task in run.tasks:
        monkeypatch.setattr(task, "fixed_set", lambda split: pytest.fail(f"{split} measured eagerly"))
    logged = run.evaluate("val")
    for k, task in enumerate(run.tasks):
        eager = build_task(task.cfg, task.unit, task.seed)
        for split in task.val_splits:
            expected = eager.random_baseline_mse(split)
            assert task.random_baseline_mse(split) == pytest.approx(expected, rel=1e-6)
            assert logged[k][f"{split}/normalized"] == pytest.approx(
                100 * logged[k][f"{split}/mse"] / expected, rel=1e-6
            )


def test_compiled_linear_products_equal_f_linear_in_evaluation_and_training(private_cache):
    """Under ``torch.compile`` and ``no_grad`` (a compiled evaluation) ``linear`` is a broadcast multiply
    and sum over the inputs, in training a matrix product: both ``F.linear`` to float32 rounding."""
    g = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*shape, generator=g) for shape in ((64, 100), (3, 100), (3,)))
    product = compiled.compile_fn(lambda x, w, b: (linear(x, w), linear(x, w, b)))
    expected = (torch.nn.functional.linear(x, w), torch.nn.functional.linear(x, w, b))
    with torch.no_grad():
        evaluated = product(x, w, b)
    trained = product(x, w.requires_grad_(), b)
    for out in (*evaluated, *trained):
        assert out.shape == (64, 3)
    for out, want in zip(evaluated + trained, expected + expected, strict=True):
        torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    assert trained[0].requires_grad and not evaluated[0].requires_grad


def test_an_untrusted_cache_keeps_inductor_out_of_it(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could plant a library here
    monkeypatch.setenv("NALU_SUITE_CACHE", str(shared))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setattr(compiled.tempfile, "tempdir", str(tmp_path))  # its mkdtemp: not left in /tmp
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


# --- the whole step as one graph (replicas/fused_step.py) -------------------------------------------------
FUSED_RUN = [
    "task=static_arith",
    "task.op=mul",
    "unit=nmu",
    "task.eval_size=50",
    "task.baseline_draws=1",
    "batch_size=32",
    "optim.lr=0.01",
    "optim.schedule=cosine",
    "optim.whiten_from=10",  # whitened Adam from step 10: both of its graphs
    "regularizer.weight=1.0",
    "regularizer.start=20",
    "regularizer.end=40",
    "replica_data=none",
]


def train_runs(make_cfg, *overrides: str, steps=50, poison=None, modes=("false", "true")):
    """A ``ReplicaRun`` of 3 replicas per ``replica_compile`` mode, stepped ``steps`` times on its stream
    (replica 1's first weight set to NaN before step ``poison``)."""
    runs = []
    for mode in modes:
        cfg = make_cfg(*FUSED_RUN, *overrides, "replicas=3", f"replica_compile={mode}")
        run = ReplicaRun(cfg, replica_settings(cfg))
        stream = iter(run.batches)
        for step in range(steps):
            if step == poison:
                with torch.no_grad():
                    run.model.params["model.first.W"][1, 0, 0] = float("nan")
            run.train_step(next(stream))
        stream.close()
        runs.append(run)
    return runs


@pytest.mark.parametrize(
    "optim",
    [
        ["optim.name=adam", "+optim.weight_decay=0.01"],
        ["optim.name=adamw", "+optim.weight_decay=0.01", "optim.whiten_from=null"],
    ],
    ids=["whitened-adam", "adamw"],
)
def test_the_fused_step_trains_the_eager_replicas_to_float32_rounding(make_cfg, private_cache, optim):
    """``replica_compile=true`` runs loss, gradient, optimiser and projection as one graph: through the
    regulariser ramp, the cosine schedule and whitened Adam's switch with L2 decay (or AdamW's decoupled
    decay) it takes the eager run's steps, to float32 rounding; the optimiser's own state counts the same
    steps."""
    eager, fused = train_runs(make_cfg, *optim)
    assert fused._fused is not None and eager._fused is None
    assert fused.compile_s > 0 and eager.compile_s == 0
    torch.testing.assert_close(fused.last_loss, eager.last_loss, rtol=1e-3, atol=0)
    for name, value in eager.model.params.items():
        torch.testing.assert_close(fused.model.params[name], value, rtol=1e-4, atol=1e-5)
        e, f = eager.optimizer.state[value], fused.optimizer.state[fused.model.params[name]]
        assert float(f["step"]) == float(e["step"]) == 50
        torch.testing.assert_close(f["exp_avg_sq"], e["exp_avg_sq"], rtol=1e-3, atol=1e-9)
    assert fused.optimizer.param_groups[0]["lr"] == eager.optimizer.param_groups[0]["lr"]  # the schedule


def test_a_fused_step_freezes_a_diverging_replica_at_its_weights_before_that_step(make_cfg, private_cache):
    """Replica 1's loss turns NaN at step 30: the fused step leaves its weights as they were before that
    step, marks it diverged at 30, and the others train on exactly as in the run without the fault."""
    (at_30,) = train_runs(make_cfg, steps=30, modes=["true"])
    (clean,) = train_runs(make_cfg, steps=40, modes=["true"])
    (broken,) = train_runs(make_cfg, steps=40, poison=30, modes=["true"])
    assert broken.tracker.diverged_at == [None, 30, None]
    assert broken.alive.tolist() == [True, False, True]
    for name, value in clean.model.params.items():
        assert torch.equal(broken.model.params[name][[0, 2]], value[[0, 2]]), name
        expected = at_30.model.params[name][1].clone()
        if name == "model.first.W":
            expected[0, 0] = float("nan")  # the poison itself stays: it is the weight it diverged with
        torch.testing.assert_close(broken.model.params[name][1], expected, rtol=0, atol=0, equal_nan=True)


def test_runs_the_fused_step_cannot_take_compile_their_loss_only(make_cfg, private_cache, caplog):
    """Gradient clipping, or an optimiser other than Adam, keeps the optimiser eager (the log says why)."""
    from nalu_suite.replicas.fused_step import unfused_reason

    for overrides, reason in [
        (["trainer.gradient_clip_val=1.0"], "gradient clipping"),
        (["optim.name=sgd", "optim.whiten_from=null"], "the optimiser SGD"),
    ]:
        cfg = make_cfg(*FUSED_RUN, *overrides, "replicas=2", "replica_compile=true")
        with caplog.at_level("INFO", logger="nalu_suite"):
            run = ReplicaRun(cfg, replica_settings(cfg))
        assert run._fused is None
        assert reason in unfused_reason(run.model, run.optimizer, run.settings.clip_value)
        assert reason in caplog.text
