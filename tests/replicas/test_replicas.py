"""``replicas=R``: R seeds trained as one batched computation behave like R plain runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from nalu_suite.errors import ConfigError
from nalu_suite.replicas import ReplicaRun, replica_settings, train_replicas
from nalu_suite.replicas.data import StackedBatches
from nalu_suite.train import train

#: metrics that legitimately differ between two runs of the same seed
TIMING = ("wall_time_s",)


def configure(make_cfg, *overrides: str, replicas: int = 1, engine: bool = False, out: str = "run"):
    cfg = make_cfg(*overrides)
    with open_dict(cfg):
        cfg.replicas = replicas
        cfg.replicas_engine = engine
        cfg.paths.output_dir = str(Path(cfg.paths.output_dir).parent / out)
    return cfg


def assert_same_metrics(actual: dict, expected: dict, rel: float = 0.0) -> None:
    keys = set(expected) - set(TIMING)
    assert keys <= set(actual), f"missing: {keys - set(actual)}"
    for key in sorted(keys):
        a, e = float(actual[key]), float(expected[key])
        if math.isnan(e):
            assert math.isnan(a), key
        else:
            assert a == pytest.approx(e, rel=rel, abs=0.0), key


@pytest.fixture(scope="module")
def exactness(every_step_path):
    """150 steps through every code path of a step (the replica tests' ``every_step_path``)."""
    return every_step_path(150, 60, 0.01, (30, 90))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, exactness):
    """The plain Lightning run of seed 5, the replica engine with R=1 (seed 5) and R=8 (seeds 0..7)."""
    from nalu_suite.config import compose

    def cfg_for(seed: int, replicas: int, engine: bool):
        cfg = compose(["callbacks.progress_bar=null", "logger=none", *exactness, f"seed={seed}"])
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path_factory.mktemp(f"r{replicas}"))
            cfg.replicas = replicas
            cfg.replicas_engine = engine
        return cfg

    plain_cfg = cfg_for(5, 1, False)
    r8_cfg = cfg_for(0, 8, False)
    return {
        "plain": train(plain_cfg),
        "r1": train(cfg_for(5, 1, True)),
        "r8": train(r8_cfg),
        "r8_dir": Path(r8_cfg.paths.output_dir),
    }


def test_replica_engine_with_one_replica_reproduces_the_plain_lightning_run(runs):
    (row,) = runs["r1"]["replicas"]
    assert row["seed"] == 5
    # the same numbers as the Lightning run, bit for bit: same init, data, optimiser, schedule, clipping
    assert_same_metrics(row, runs["plain"])
    assert runs["plain"]["train/reg_weight"] == pytest.approx(1.0)  # the regulariser really was on


def test_a_replica_inside_a_batch_of_eight_matches_its_own_single_run(runs):
    rows = runs["r8"]["replicas"]
    assert [r["seed"] for r in rows] == list(range(8))
    assert_same_metrics(rows[5], runs["r1"]["replicas"][0], rel=1e-5)  # batched matmuls: float rounding
    # the replicas are really different runs (own init, subsets and data), not copies
    assert len({r["test/interp/mse"] for r in rows}) == 8
    assert len({r["success_threshold"] for r in rows}) > 1
    # and they learned: normalised error 100 = the untrained model
    assert max(r["test/interp/normalized"] for r in rows) < 5


@pytest.fixture(scope="module")
def nru_runs(tmp_path_factory, every_step_path):
    """The plain run and the R = 1 replica run of a unit whose forward differs in training: the NRU's
    ``|W|`` is ``tanh(1000 W) ** 2`` in training and exact in evaluation."""
    from nalu_suite.config import compose

    overrides = [o if o != "unit=nmu" else "unit=nru" for o in every_step_path(60, 30, 0.01, (20, 40))]

    def run(engine: bool):
        cfg = compose(["callbacks.progress_bar=null", "logger=none", *overrides, "seed=3"])
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path_factory.mktemp("nru"))
            cfg.replicas, cfg.replicas_engine = 1, engine
        return train(cfg)

    return run(False), run(True)


def test_replicas_evaluate_in_evaluation_mode_as_the_plain_run_does(nru_runs):
    plain, replicas = nru_runs
    (row,) = replicas["replicas"]
    assert_same_metrics(row, plain)


def test_stacked_predictions_are_each_models_evaluation_outputs():
    from nalu_suite.replicas.model import StackedModel
    from nalu_suite.tasks.base import ArithmeticModel
    from nalu_suite.units import build_unit

    class OneUnit(ArithmeticModel):
        def __init__(self) -> None:
            super().__init__()
            self.unit = build_unit("nru", 3, 2)
            self.unit.W.data.mul_(0.002)  # |W| ~ 1e-3: tanh(1000 W) ** 2 and |W| differ the most here

        def forward(self, x):
            return self.unit(x)

    torch.manual_seed(0)
    models = [OneUnit() for _ in range(3)]
    stacked = StackedModel(models)
    x = -1 - torch.rand(3, 5, 3)
    expected = torch.stack([m.eval()(x[k]) for k, m in enumerate(models)])
    torch.testing.assert_close(stacked.predict(x), expected)
    assert not torch.allclose(torch.stack([m.train()(x[k]) for k, m in enumerate(models)]), expected)
    # training calls are in training mode again afterwards
    train_out = stacked.vmap(lambda s, x: stacked.call(s, "forward", x), n_batched_args=1)(stacked.state(), x)
    torch.testing.assert_close(train_out, torch.stack([m(x[k]) for k, m in enumerate(models)]))


def test_results_json_holds_rows_and_madsen_summaries_and_report_pools_them(runs):
    from nalu_suite.report import report
    from nalu_suite.stats import wilson_interval

    saved = json.loads((runs["r8_dir"] / "results.json").read_text())
    rows = saved["replicas"]
    k = sum(r["test/extrap/success"] for r in rows)
    assert saved["test/extrap/success_rate"] == k / 8
    lo, hi = wilson_interval(int(k), 8)
    assert (saved["test/extrap/success_rate_ci_low"], saved["test/extrap/success_rate_ci_high"]) == (lo, hi)
    assert saved["test/interp/mse"] == pytest.approx(sum(r["test/interp/mse"] for r in rows) / 8)
    solved = sorted(r["solved_at"] for r in rows if not math.isnan(r["solved_at"]))
    assert math.isnan(saved["solved_at_median"]) if not solved else saved["solved_at_median"] >= solved[0]
    table = report(runs["r8_dir"], metrics=["test/extrap/success"])
    assert f"({int(k)}/8)" in table  # each replica counted like a seed


@pytest.mark.parametrize(
    ("task", "mode"),  # a sampler that draws into its slot / one that is copied; each way of prefetching
    [("static_arith", "process"), ("static_arith", "thread"), ("static_arith", "none")]
    + [("recurrent_arith", "process")],
)
def test_stacked_batches_are_each_seeds_plain_training_stream(make_cfg, task, mode):
    overrides = [f"task={task}", "task.eval_size=10", "batch_size=4", f"replica_data={mode}"]
    if task == "recurrent_arith":
        overrides += ["unit=lstm", "task.extrap_eval_size=2", "task.baseline_draws=1"]
    cfg = configure(make_cfg, *overrides, replicas=3)
    run = ReplicaRun(cfg, replica_settings(cfg))
    plain = [iter(stream) for stream in run.batches.streams]
    assert [stream.seed for stream in run.batches.streams] == [0, 1, 2]
    assert run.batches.prefetch == mode
    checked = 0
    addresses = []
    # through chunk 2 and 3, which reuse the buffers of chunks 0 and 1; a batch is compared while valid
    for i, (x, y) in zip(range(305), run.batches, strict=False):
        own = [next(stream) for stream in plain]
        assert x.is_contiguous() and y.is_contiguous()  # copied out of the block, where it is strided
        addresses.append(x.data_ptr())
        if i in (0, 1, 99, 100, 102, 199, 200, 250, 300, 304):
            for k, (x_k, y_k) in enumerate(own):
                assert torch.equal(x[k], x_k) and torch.equal(y[k], y_k), (i, k)
            checked += 1
    assert checked == 10
    assert len(set(addresses)) == 2 and addresses[0] != addresses[1]  # two buffers, filled in turn


# units of the static table. Adam turns the sign of a near-zero gradient into a full step, and units
# with tanh/sigmoid/exp/log round by an ulp differently when vectorised over replicas, so trajectories of
# those units are compared through their gradients (to float tolerance) rather than bit for bit.
TABLE_UNITS = ["nalu", "nac", "nac_mul", "inalu", "npu", "realnpu", "linear", "relu6", "nau", "nmu"]


@pytest.mark.parametrize("unit", TABLE_UNITS)
def test_every_table_unit_has_its_own_gradient_inside_a_batch(make_cfg, unit):
    cfg = configure(make_cfg, "task=static_arith", "task.op=sub", f"unit={unit}", "task.eval_size=10")
    with open_dict(cfg):
        cfg.batch_size = 16
        cfg.regularizer.weight = 1.0  # the units' regularisers take part too
    runs = []
    for seed, replicas in ((1, 1), (0, 3)):  # seed 1 alone, and as replica 1 of seeds 0..2
        with open_dict(cfg):
            cfg.seed, cfg.replicas = seed, replicas
        run = ReplicaRun(cfg, replica_settings(cfg))
        stream = iter(run.batches)
        run.train_step(next(stream))
        stream.close()
        runs.append(run)
    alone, batch = runs
    torch.testing.assert_close(batch.last_loss[1], alone.last_loss[0], rtol=1e-6, atol=0.0)
    assert any(p.grad.abs().max() > 0 for p in alone.model.params.values())
    for name, value in alone.model.params.items():
        grad = value.grad[0]
        scale = float(grad.abs().max())
        torch.testing.assert_close(batch.model.params[name].grad[1], grad, rtol=1e-4, atol=1e-6 * scale)


def _run_args(cfg):
    return cfg, replica_settings(cfg)


def test_a_diverging_replica_is_frozen_and_failed_while_the_others_go_on(make_cfg, tmp_path):
    common = ["task=static_arith", "task.op=add", "unit=nau", "task.eval_size=100", "trainer.max_steps=60"]
    common += ["trainer.val_check_interval=20", "batch_size=16"]
    clean = ReplicaRun(*_run_args(configure(make_cfg, *common, replicas=3, out="clean")))
    broken = ReplicaRun(*_run_args(configure(make_cfg, *common, replicas=3, out="broken")))
    a, b = iter(clean.batches), iter(broken.batches)
    for step in range(60):
        if step == 30:
            with torch.no_grad():
                broken.model.params["model.first.W"][1, 0, 0] = float("nan")
        for run, stream in ((clean, a), (broken, b)):
            run.train_step(next(stream))
            if run.step % 20 == 0:
                run.validate()
    a.close()
    b.close()
    assert broken.tracker.diverged_at == [None, 30, None]
    for name, value in clean.model.params.items():
        assert torch.equal(broken.model.params[name][[0, 2]], value[[0, 2]])  # untouched by the NaN
    rows = broken.rows(broken.test(), wall_time=1.0)
    assert rows[1]["diverged_at"] == 30 and rows[1]["test/extrap/success"] == 0.0
    assert "diverged_at" not in rows[0]


def test_whitened_adam_replicas_match_their_plain_lightning_runs(tmp_path, exactness):
    """``optim.whiten_from``: the same optimiser in both engines, and per replica in a batch."""
    from nalu_suite.config import compose

    def run(seed: int, replicas: int, engine: bool, whiten: str = "50"):
        overrides = [*exactness, f"optim.whiten_from={whiten}", f"seed={seed}"]
        cfg = compose(["callbacks.progress_bar=null", "logger=none", *overrides])
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / f"s{seed}r{replicas}{engine}{whiten}")
            cfg.replicas, cfg.replicas_engine = replicas, engine
        return train(cfg)

    plain, (alone,), pair = run(4, 1, False), run(4, 1, True)["replicas"], run(3, 2, False)["replicas"]
    assert_same_metrics(alone, plain)
    assert_same_metrics(pair[1], alone, rel=1e-5)
    # whitening changed the run: the same seed without it ends elsewhere
    unwhitened = run(4, 1, False, whiten="null")
    assert unwhitened["test/interp/mse"] != pytest.approx(plain["test/interp/mse"], rel=1e-3)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("replicas=0", "replicas=0"),
        ("replicas=abc", "replicas='abc'"),
        ("trainer.val_check_interval=0.5", "val_check_interval"),
        ("+trainer.accumulate_grad_batches=2", "accumulate_grad_batches"),
        ("+trainer.precision=16", "precision"),
        ("+trainer.gradient_clip_algorithm=max", "gradient_clip_algorithm"),
        ("ckpt_path=/tmp/some.ckpt", "ckpt_path"),
        ("replica_data=fork", "replica_data='fork' is not valid; choose one of: auto, process, thread, none"),
        ("replica_compile=yes", "replica_compile='yes' is not valid; choose one of: auto, true, false"),
    ],
)
def test_bad_replica_settings_are_config_errors_naming_the_key(make_cfg, override, message):
    cfg = make_cfg("task=static_arith", "replicas=4", override)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        train(cfg)


def test_recurrent_task_runs_as_replicas_too(make_cfg):
    common = ["task=recurrent_arith", "unit=lstm", "task.eval_size=20", "task.extrap_eval_size=4"]
    common += ["task.extrap_length=20", "task.baseline_draws=1", "batch_size=8"]
    common += ["trainer.max_steps=6", "trainer.val_check_interval=3"]
    results = train_replicas(configure(make_cfg, *common, replicas=2))
    assert [r["seed"] for r in results["replicas"]] == [0, 1]
    assert all(math.isfinite(r["test/interp/mse"]) for r in results["replicas"])


def test_stacked_batches_need_streams_that_agree(make_cfg):
    from nalu_suite.data import BatchStream

    def draw(g, n):
        return (torch.rand(n, 2, generator=g),)

    with pytest.raises(ValueError, match="batch_size"):
        StackedBatches([BatchStream(draw, 4, 0), BatchStream(draw, 8, 1)])


def test_a_sampler_without_out_is_stacked_a_whole_chunk_at_a_time():
    from nalu_suite.data import BatchStream

    def draw(g, n):  # not splittable: randn's vectorised path depends on the size of the call
        return (torch.randn(n, 3, generator=g), torch.arange(n))

    streams = [BatchStream(draw, 2, seed, chunk=5) for seed in (0, 1)]
    stacked = StackedBatches(streams, prefetch=False)
    assert stacked.block == 5 and not streams[0].splittable
    plain = [iter(s) for s in streams]
    for _, (x, index) in zip(range(12), stacked, strict=False):  # chunk 2 reuses chunk 0's buffer
        for k, (x_k, index_k) in enumerate(next(p) for p in plain):
            assert torch.equal(x[k], x_k) and torch.equal(index[k], index_k)


def _failing_stream(seed: int, bad_chunk: int):
    """A splittable stream whose sampler raises once it reaches chunk ``bad_chunk``."""
    from nalu_suite.data import BatchStream

    def draw(g, n, out=None):
        if g.initial_seed() == stream.generator(bad_chunk).initial_seed():
            raise ValueError(f"bad chunk {bad_chunk} of seed {seed}")
        x = torch.empty(n, 2) if out is None else out[0]
        return (x.uniform_(generator=g),)

    stream = BatchStream(draw, 2, seed, chunk=10)
    return stream


def test_an_error_in_the_data_process_reaches_the_trainer_with_its_traceback():
    stacked = StackedBatches([_failing_stream(0, 1), _failing_stream(1, 5)], prefetch="process", block=5)
    batches = iter(stacked)
    for _ in range(10):  # chunk 0 (blocks 0 and 1) is fine
        next(batches)
    with pytest.raises(RuntimeError, match="(?s)data process failed.*ValueError: bad chunk 1 of seed 0"):
        next(batches)


def test_closing_the_batches_ends_the_data_process_and_a_killed_one_is_reported():
    import multiprocessing
    import os
    import signal

    streams = [_failing_stream(seed, 99) for seed in (0, 1)]
    before = set(multiprocessing.active_children())
    batches = iter(StackedBatches(streams, prefetch="process", block=5))
    (worker,) = set(multiprocessing.active_children()) - before
    next(batches)
    batches.close()
    assert not worker.is_alive() and worker.exitcode == 0

    batches = iter(StackedBatches(streams, prefetch="process", block=5))
    (worker,) = set(multiprocessing.active_children()) - before
    for _ in range(5):
        next(batches)
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(RuntimeError, match="data process stopped unexpectedly.*replica_data=thread"):
        for _ in range(20):
            next(batches)


def test_the_table_runner_trains_each_cell_as_train_py_would(make_cfg, tmp_path):
    import yaml

    from nalu_suite.config import compose
    from nalu_suite.replicas.table import cell_overrides, run_op

    extra = ["trainer.max_steps=40", "trainer.val_check_interval=20", "task.eval_size=50", "batch_size=16"]
    extra += ["task.baseline_draws=1", "regularizer.start=10", "regularizer.end=30"]
    run_op("sub", ["nau", "nmu"], replicas=2, seed=3, extra=extra, out=tmp_path / "table")
    for unit in ("nau", "nmu"):
        cell = tmp_path / "table" / f"op=sub,unit={unit}"
        table_rows = json.loads((cell / "results.json").read_text())["replicas"]
        cfg = compose(
            ["callbacks.progress_bar=null", "logger=none", *cell_overrides("sub", unit, 2, 3, extra)]
        )
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / f"alone-{unit}")
        alone_rows = train_replicas(cfg)["replicas"]
        for mine, theirs in zip(table_rows, alone_rows, strict=True):
            assert_same_metrics(mine, theirs)
        assert "unit=" + unit in (cell / ".hydra" / "overrides.yaml").read_text()
        saved = yaml.safe_load((cell / ".hydra" / "config.yaml").read_text())  # for static_weights.py
        assert (saved["unit"]["name"], saved["task"]["op"], saved["seed"]) == (unit, "sub", 3)


def test_the_table_runner_sets_the_cells_threads_before_it_builds_their_runs(tmp_path, monkeypatch):
    """The runs draw their evaluation sets when they are built: with torch's default threads there, two
    ops' worker processes on two cores took 2-8x longer to start."""
    from nalu_suite.replicas import table

    threads_at_build = []
    real = table.ReplicaRun

    def recording(*args, **kwargs):
        threads_at_build.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(table, "ReplicaRun", recording)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        extra = ["trainer.max_steps=2", "trainer.val_check_interval=2", "task.eval_size=20", "batch_size=4"]
        table.run_op("add", ["nau", "nmu"], 1, 0, [*extra, "task.baseline_draws=1", "threads=1"], tmp_path)
    finally:
        torch.set_num_threads(before)
    assert threads_at_build == [1, 1]


def test_the_table_runner_with_two_jobs_writes_the_same_cells_as_one_process(tmp_path):
    from nalu_suite.replicas.table import main

    extra = ["trainer.max_steps=20", "trainer.val_check_interval=10", "task.eval_size=40", "batch_size=8"]
    extra += ["task.baseline_draws=1", "threads=1"]
    common = ["--ops", "add,mul", "--units", "nau,nmu", "--replicas", "2"]
    main([*common, "--out", str(tmp_path / "one"), *extra])
    main([*common, "--jobs", "2", "--out", str(tmp_path / "two"), *extra])
    cells = sorted(p.parent.name for p in (tmp_path / "two").glob("*/results.json"))
    assert cells == ["op=add,unit=nau", "op=add,unit=nmu", "op=mul,unit=nau", "op=mul,unit=nmu"]
    for cell in cells:
        one = json.loads((tmp_path / "one" / cell / "results.json").read_text())["replicas"]
        two = json.loads((tmp_path / "two" / cell / "results.json").read_text())["replicas"]
        for mine, theirs in zip(two, one, strict=True):
            assert_same_metrics(mine, theirs)
    assert (tmp_path / "two" / "success.png").is_file()
    table = (tmp_path / "two" / "table.md").read_text().splitlines()
    assert "| unit | add | mul |" in table
    for unit in ("nau", "nmu"):
        row = next(line for line in table if line.startswith(f"| `{unit}` |"))
        for op, cell in zip(("add", "mul"), row.strip("|").split("|")[1:], strict=True):
            r = json.loads((tmp_path / "two" / f"op={op},unit={unit}" / "results.json").read_text())
            rate, low = r["test/extrap/success_rate"], r["test/extrap/success_rate_ci_low"]
            assert cell.strip().startswith(f"{100 * rate:.0f}% [{100 * low:.0f}, "), (unit, op, cell)


def test_static_weights_script_tells_the_exact_shape_from_the_symmetric_saddle(tmp_path, run_script):
    import importlib.util

    import yaml

    from nalu_suite.tasks.arithmetic import draw_subsets

    spec = importlib.util.spec_from_file_location("static_weights", "scripts/static_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    task = {"op": "mul", "input_size": 20, "subset_ratio": 0.25, "overlap_ratio": 0.5}
    weights = torch.zeros(3, 2, 20)  # seeds 0, 1, 2: exact, symmetric, exact with negated units
    for k in range(3):
        s = draw_subsets(20, 0.25, 0.5, k)
        if k == 1:
            weights[k, :, s.a_start : s.a_stop] = 0.5
            weights[k, :, s.b_start : s.b_stop] = 0.5
            weights[k, :, max(s.a_start, s.b_start) : min(s.a_stop, s.b_stop)] = 1.0
        else:
            sign = -1.0 if k == 2 else 1.0
            weights[k, 1, s.a_start : s.a_stop] = sign  # units in either order
            weights[k, 0, s.b_start : s.b_stop] = sign
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / ".hydra").mkdir()
    torch.save({"seeds": [0, 1, 2], "best": {"model.first.W": weights}}, tmp_path / "checkpoints/replicas.pt")
    (tmp_path / ".hydra/config.yaml").write_text(yaml.safe_dump({"task": task, "unit": {"name": "nmu"}}))
    counts = module.describe(tmp_path)
    assert counts == {"exact-shape": 2, "symmetric": 1}
    done = run_script("scripts/static_weights.py", str(tmp_path))
    assert done.returncode == 0 and "| 1 | symmetric |" in done.stdout
    missing = run_script("scripts/static_weights.py", str(tmp_path / "checkpoints"))
    assert missing.returncode != 0 and "no checkpoints/replicas.pt" in missing.stderr


def load_bench_replicas():
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("bench_replicas", "scripts/bench_replicas.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_replicas"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_bench_replicas_rewrites_only_its_own_section_of_benchmarks_md():
    module = load_bench_replicas()
    section = module.SECTION + "\n\nnew table\n"
    doc = f"# Benchmarks\n\n{module.SECTION}\n\nold table\n\n## MNIST\n\nkept\n"
    assert module.replace_section(doc, section) == f"# Benchmarks\n\n{section}\n## MNIST\n\nkept\n"
    assert module.replace_section("", section) == "# Benchmarks\n\n" + section
    assert module.replace_section("# Benchmarks\n\n## MNIST\n", section).endswith("## MNIST\n\n" + section)


def test_bench_replicas_reports_a_difference_the_noise_swamped_as_nan_and_leaves_it_out():
    """A long run no slower than its short run gives no rate (not an absurd one), and the medians over
    rounds are taken over the rounds that measured something."""
    module = load_bench_replicas()
    assert module._rate(1000, 2.0) == 500
    assert math.isnan(module._rate(1000, 0.0)) and math.isnan(module._rate(1000, -0.5))
    assert module._median([math.nan, 2.0, 4.0]) == 3.0
    assert math.isnan(module._median([math.nan]))


def test_training_freezes_the_long_lived_objects_out_of_the_collector_and_thaws_them(make_cfg):
    """``fit_lockstep`` keeps what exists when training starts (and after the first validation) out of
    the cyclic collector's full collections, and hands it back at the end, however training ends."""
    import gc

    from nalu_suite.replicas import fit_lockstep

    cfg = configure(make_cfg, "task=static_arith", "task.eval_size=10", "batch_size=4", replicas=2)
    with open_dict(cfg):
        cfg.trainer.max_steps, cfg.trainer.val_check_interval = 6, 2
    run = ReplicaRun(cfg, replica_settings(cfg))
    assert gc.get_freeze_count() == 0
    frozen: list[tuple[int, int]] = []
    batches = iter(run.batches)
    try:
        fit_lockstep([run], batches, on_validate=lambda step: frozen.append((step, gc.get_freeze_count())))
        assert [step for step, _ in frozen] == [2, 4, 6]
        assert all(count > 0 for _, count in frozen)
        assert gc.get_freeze_count() == 0

        def failing(step: int) -> None:
            raise RuntimeError("stop")

        run.step = 0
        with pytest.raises(RuntimeError, match="stop"):
            fit_lockstep([run], batches, on_validate=failing)
        assert gc.get_freeze_count() == 0
        gc.freeze()  # frozen by the caller: left as it is
        count = gc.get_freeze_count()
        run.step = 0
        fit_lockstep([run], batches)
        assert gc.get_freeze_count() >= count > 0
    finally:
        gc.unfreeze()
        batches.close()
