"""The Primer's single module arithmetic task (``task=smat``) and its command (``nalu-bench smat``)."""

from __future__ import annotations

import csv

import pytest
import torch
from omegaconf import OmegaConf

from nalu_suite.errors import ConfigError
from nalu_suite.rng import generator
from nalu_suite.tasks.smat import (
    RANGES,
    SmatTask,
    draw_intervals,
    range_of_seed,
    simulated_threshold,
)
from nalu_suite.tasks.static_arith import draw_into


def smat_cfg(**overrides):
    base = {
        "name": "smat",
        "op": "add",
        "range": 7,
        "seeds_per_range": 1,
        "input_size": 2,
        "eval_size": 2000,
        "threshold_samples": 50_000,
    }
    return base | overrides


UNIT = {"name": "nau", "first": "nau", "second": "nau"}


def test_the_ranges_are_the_primers_table():
    assert len(RANGES) == 9
    assert RANGES[1] == (((-20.0, -10.0),), ((-40.0, -20.0),))
    assert RANGES[5] == (((-2.0, 2.0),), ((-6.0, -2.0), (2.0, 6.0)))
    assert RANGES[7] == (((1.0, 2.0),), ((2.0, 6.0),))
    for interp, extrap in RANGES.values():  # extrapolation lies outside the interpolation range
        lo, hi = interp[0]
        assert all(e_hi <= lo or e_lo >= hi for e_lo, e_hi in extrap)


def test_the_mirrored_union_is_sampled_uniformly_and_never_between_the_intervals():
    x = draw_intervals(torch.empty(200_000), RANGES[5][1], generator(0, "t"))
    assert bool(((x >= -6) & (x < -2) | (x >= 2) & (x < 6)).all())
    assert abs(float((x < 0).double().mean()) - 0.5) < 0.01  # both intervals, by length
    assert abs(float(x[x > 0].mean()) - 4.0) < 0.02 and abs(float(x[x < 0].mean()) + 4.0) < 0.02


def test_a_single_interval_draws_the_same_values_as_draw_into():
    a = draw_intervals(torch.empty(1000), ((1.1, 1.2),), generator(3, "t"))
    b = draw_into(torch.empty(1000), (1.1, 1.2), generator(3, "t"))
    assert torch.equal(a, b) and bool(((a >= 1.1) & (a <= 1.2)).all())


@pytest.mark.parametrize(
    ("op", "number", "expected"),
    [  # the reference's recomputed table (numpy, 1e6 samples), docs/benchmarks.md
        ("add", 1, 3.67e-5),
        ("add", 5, 6.67e-7),
        ("mul", 3, 9.39e-6),
        ("mul", 9, 3.48e-2),
        ("div", 4, 1.48e-7),
        ("div", 8, 8.27e-8),
    ],
)
def test_thresholds_match_the_recomputed_table(op, number, expected):
    assert simulated_threshold(op, RANGES[number][1], 2, 1e-4, 200_000) == pytest.approx(expected, rel=0.03)


def test_thresholds_match_a_direct_computation():
    eps = 1e-4
    # +, U[20,40]: (eps (|a| + |b|))^2, E[(a + b)^2] = 2 Var + (2 * 30)^2
    assert simulated_threshold("add", ((20.0, 40.0),), 2, eps, 200_000) == pytest.approx(
        eps**2 * (2 * 400 / 12 + 60**2), rel=0.01
    )
    # x, U[2,6]: ((1 - eps)^2 - 1)^2 E[a^2]^2, E[a^2] = 16 + 16/12
    assert simulated_threshold("mul", ((2.0, 6.0),), 2, eps, 200_000) == pytest.approx(
        ((1 - eps) ** 2 - 1) ** 2 * (16 + 16 / 12) ** 2, rel=0.02
    )
    # /, U[2,6]: ((1-eps)/(1+eps) - 1)^2 E[a^2] E[1/b^2], E[1/b^2] = 1/(2*6)
    assert simulated_threshold("div", ((2.0, 6.0),), 2, eps, 200_000) == pytest.approx(
        ((1 - eps) / (1 + eps) - 1) ** 2 * (16 + 16 / 12) / 12, rel=0.02
    )
    # distractors add to the threshold: + sums |x| over every input
    assert simulated_threshold("add", ((2.0, 6.0),), 10, eps, 50_000) > 10 * simulated_threshold(
        "add", ((2.0, 6.0),), 2, eps, 50_000
    )


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_targets_are_a_op_b_of_two_inputs_and_the_rest_are_distractors(op):
    task = SmatTask(smat_cfg(op=op, input_size=10), UNIT, seed=4)
    x, y = task.sample(generator(0, "t"), 64, ((1.0, 2.0),))
    i, j = task.subsets.a_start, task.subsets.b_start
    expected = {"add": x[:, i] + x[:, j], "sub": x[:, i] - x[:, j], "mul": x[:, i] * x[:, j]}
    expected["div"] = x[:, i] / x[:, j]
    torch.testing.assert_close(y.squeeze(-1), expected[op])
    x2 = x.clone()
    others = [k for k in range(10) if k not in (i, j)]
    x2[:, others] = 7.0
    torch.testing.assert_close(task.target(x2), y)


@pytest.mark.parametrize("op", ["div", "mul"])
def test_an_exact_zero_draw_becomes_half_a_grid_step_for_division_only(op, monkeypatch):
    def grid_points(x, intervals, g):  # the draws that hit the grid point 0 of U[-2, 2), and one that did not
        x.copy_(torch.tensor([[0.0, 0.0], [-1.5, 0.0], [0.5, 1.25]]))
        return x

    monkeypatch.setattr("nalu_suite.tasks.smat.draw_intervals", grid_points)
    task = SmatTask(smat_cfg(op=op, range=5), UNIT, seed=0)
    x, y = task.sample(generator(0, "t"), 3, ((-2.0, 2.0),))
    half_step = 4 * 2.0**-25
    if op == "div":
        assert torch.equal(x, torch.tensor([[half_step, half_step], [-1.5, half_step], [0.5, 1.25]]))
        assert bool(torch.isfinite(y).all())
        assert y[1, 0] == pytest.approx(-1.5 / half_step, rel=1e-6)
    else:  # the other ops keep every draw as it is
        assert torch.equal(x[:, 1], torch.tensor([0.0, 0.0, 1.25]))


def test_fixed_sets_respect_the_range_and_are_the_same_for_every_seed():
    a, b = SmatTask(smat_cfg(range=5), UNIT, 0), SmatTask(smat_cfg(range=5), UNIT, 11)
    x_val, _ = a.fixed_set("val")
    x_ext, _ = a.fixed_set("test/extrap")
    assert bool(((x_val >= -2) & (x_val <= 2)).all())
    assert bool((x_ext.abs() >= 2).all() and (x_ext.abs() <= 6).all())
    assert torch.equal(x_ext, b.fixed_set("val_extrap")[0])  # validation and test share the extrapolation set
    assert torch.equal(x_val, b.fixed_set("val")[0])


def test_several_ranges_in_one_run_give_each_range_its_seeds():
    cfg = smat_cfg(range="all", seeds_per_range=25)
    assert [range_of_seed(cfg, s) for s in (0, 24, 25, 224)] == [1, 1, 2, 9]
    assert SmatTask(cfg, UNIT, 130).range == 6
    assert range_of_seed(smat_cfg(range=[2, 5], seeds_per_range=3), 4) == 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"op": "pow"}, "task.op='pow' is not valid; choose one of: add, sub, mul, div"),
        ({"range": 10}, "task.range=10 is not valid; choose one of: 1, 2, 3, 4, 5, 6, 7, 8, 9, all"),
        ({"range": [3, 0]}, "task.range=[3, 0] is not valid; choose one of: 1"),
        ({"input_size": 3}, "task.input_size=3 is not valid; choose one of: 2, 10, 100"),
    ],
)
def test_bad_values_give_one_line_with_the_choices(change, message):
    with pytest.raises(ConfigError) as err:
        SmatTask(smat_cfg(**change), UNIT, 0)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_bad_range_on_the_command_line_exits_2_with_one_line(run_script):
    result = run_script("train.py", "task=smat", "task.range=12", "logger=none", timeout=120)
    assert result.returncode == 2
    assert "task.range=12 is not valid; choose one of: 1, 2, 3" in result.stderr + result.stdout


def _module(cfg):
    """The module layer that ``cfg`` trains."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    return SmatTask(plain["task"], plain["unit"], seed=0).build_model().module


def test_per_module_settings_are_the_primers(cfg_in, tmp_path):
    nau = cfg_in(tmp_path, "task=smat", "unit=nau")
    assert (nau.optim.lr, nau.regularizer.weight, nau.regularizer.start, nau.trainer.max_steps) == (
        1e-3,
        0.01,
        20000,
        50000,
    )
    npu = cfg_in(tmp_path, "task=smat", "unit=realnpu", "task.op=div")
    assert (npu.optim.lr, npu.regularizer.weight) == (5e-3, 1e-7)
    assert _module(npu).l1_reduction == "sum"  # the Primer's L1: the sum of |p| over all parameters
    chosen = cfg_in(tmp_path, "task=smat", "unit=npu", "+unit.second_options.l1_reduction=mean")
    assert _module(chosen).l1_reduction == "mean"  # the command line wins
    inalu = cfg_in(tmp_path, "task=smat", "unit=inalu")
    assert (inalu.trainer.gradient_clip_val, inalu.trainer.gradient_clip_algorithm) == (0.1, "value")
    division = cfg_in(tmp_path, "task=division", "unit=nru")
    assert (division.task.input_size, division.task.threshold, division.optim.lr) == (10, 1e-5, 1e-3)
    assert (division.regularizer.start, division.trainer.max_steps) == (50000, 100000)


def _replica_run(cfg_in, tmp_path, *overrides):
    from nalu_suite.replicas import ReplicaRun, replica_settings

    cfg = cfg_in(
        tmp_path,
        "task=smat",
        "logger=none",
        "replica_data=none",
        "task.eval_size=1000",
        "task.threshold_samples=50000",
        *overrides,
    )
    return ReplicaRun(cfg, replica_settings(cfg))


def test_the_ideal_module_succeeds_on_the_replica_engine_and_a_perturbed_one_fails(cfg_in, tmp_path):
    run = _replica_run(
        cfg_in,
        tmp_path,
        "unit=nmu",
        "task.op=mul",
        "task.range=[2,5]",
        "task.seeds_per_range=2",
        "replicas=4",
    )
    name = next(iter(run.model.params))
    exact = torch.ones_like(run.model.params[name])
    off = exact.clone()
    off[2:] -= 1e-3  # replicas 2, 3 (range 5): the weights 1e-3 off
    run.model.load_({name: off})
    run.validate()
    rows = run.rows(run.test(), wall_time=1.0)
    assert [r["test/extrap/success"] for r in rows] == [1.0, 1.0, 0.0, 0.0]
    assert rows[0]["success_threshold"] == pytest.approx(
        simulated_threshold("mul", RANGES[2][1], 2, 1e-4, 50_000), rel=0.05
    )


def test_nau_learns_addition_in_every_kind_of_range_on_the_replica_engine(cfg_in, tmp_path, one_thread):
    from nalu_suite.replicas import fit_lockstep

    run = _replica_run(
        cfg_in,
        tmp_path,
        "unit=nau",
        "task.range=[2,5,9]",
        "task.seeds_per_range=1",
        "replicas=3",
        "optim.lr=0.02",
        "regularizer.weight=0",
        "trainer.max_steps=400",
        "trainer.val_check_interval=200",
    )
    batches = iter(run.batches)
    try:
        fit_lockstep([run], batches)
    finally:
        batches.close()
    rows = run.rows(run.test(), wall_time=1.0)
    assert [r["test/extrap/success"] for r in rows] == [1.0, 1.0, 1.0]


def test_the_benchmark_command_writes_table_csv_and_heatmap(tmp_path, one_thread):
    from nalu_suite.benchmarks.command import main

    out = tmp_path / "bench"
    main(
        [
            "smat",
            "--op",
            "add",
            "--modules",
            "nau,nac",
            "--ranges",
            "5,7",
            "--seeds",
            "2",
            "--out",
            str(out),
            "trainer.max_steps=400",
            "trainer.val_check_interval=100",
            "optim.lr=0.02",
            "task.eval_size=500",
            "task.threshold_samples=20000",
            "replica_data=none",
            "callbacks.progress_bar=null",
        ]
    )
    with open(out / "cells.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["module"], r["range"]) for r in rows} == {
        ("nau", "5"),
        ("nau", "7"),
        ("nac", "5"),
        ("nac", "7"),
    }
    assert all(r["seeds"] == "2" for r in rows)
    nau = [r for r in rows if r["module"] == "nau"]
    assert all(float(r["rate"]) == 1.0 for r in nau)  # the clamp makes NAU exact on addition
    table = (out / "table.md").read_text()
    assert "| `nau` | 100 [34, 100] | 100 [34, 100] | 100 [51, 100] |" in table
    assert (out / "success.png").stat().st_size > 1000
    assert (out / "unit=nau" / "results.json").is_file()


def test_the_benchmark_command_rejects_a_bad_range_and_module(capsys):
    from nalu_suite.benchmarks.command import main

    with pytest.raises(SystemExit) as exit_info:
        main(["smat", "--op", "add", "--ranges", "0,3", "--out", "/tmp/unused"])
    assert exit_info.value.code == 2
    assert "--ranges=[0, 3] is not valid; choose one of: 1, 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["smat", "--op", "add", "--modules", "nope", "--out", "/tmp/unused"])
    assert "unit config 'nope' does not exist" in capsys.readouterr().err
