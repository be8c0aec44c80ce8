"""The static and recurrent arithmetic tasks: subsets, targets, the success threshold, metrics."""

from __future__ import annotations

import math

import pytest
import torch

from nalu_suite.errors import ConfigError
from nalu_suite.rng import generator
from nalu_suite.tasks.arithmetic import draw_subsets
from nalu_suite.tasks.recurrent_arith import RecurrentArithTask
from nalu_suite.tasks.static_arith import StaticArithTask

STATIC = {
    "name": "static_arith",
    "op": "add",
    "input_size": 100,
    "hidden_size": 2,
    "subset_ratio": 0.25,
    "overlap_ratio": 0.5,
    "interp_range": [1, 2],
    "extrap_range": [2, 6],
    "eval_size": 2000,
    "baseline_draws": 3,
}
RECURRENT = STATIC | {
    "name": "recurrent_arith",
    "input_size": 10,
    "rnn_hidden_size": 8,
    "train_length": 10,
    "extrap_length": 1000,
    "extrap_range": [1, 2],
    "extrap_eval_size": 50,
}
NAU = {"name": "nau", "first": "nau", "second": "nau"}
NMU = {"name": "nmu", "first": "nau", "second": "nmu"}


def test_subsets_have_the_madsen_shape_and_depend_only_on_the_seed():
    s = draw_subsets(100, 0.25, 0.5, seed=3)
    assert s.a_stop - s.a_start == 25 and s.b_stop - s.b_start == 25
    assert s.b_start - s.a_start == 13 and s.a_stop - s.b_start == 12  # Madsen: x[o:o+25], x[o+13:o+38]
    assert s.a_start >= 0 and s.b_stop <= 100
    assert draw_subsets(100, 0.25, 0.5, seed=3) == s
    offsets = {draw_subsets(100, 0.25, 0.5, seed=k).a_start for k in range(20)}
    assert len(offsets) > 5  # the offset really is drawn per seed


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "square", "sqrt"])
def test_targets_are_op_of_the_two_subset_sums(op):
    task = StaticArithTask(STATIC | {"op": op}, NAU, seed=1)
    x, y = task.sample(generator(0, "t"), 64, [1, 2])
    s = task.subsets
    a = x[:, s.a_start : s.a_stop].double().sum(1)
    b = x[:, s.b_start : s.b_stop].double().sum(1)
    expected = {"add": a + b, "sub": a - b, "mul": a * b, "div": a / b, "square": a * a, "sqrt": a.sqrt()}[op]
    torch.testing.assert_close(y.squeeze(1).double(), expected, rtol=1e-6, atol=1e-5)
    assert torch.equal(y.squeeze(1), expected.float())  # the float64 value, rounded once
    into = (torch.empty_like(x), torch.full_like(y, float("nan")))  # how the data process draws
    x_into, y_into = task.sample(generator(0, "t"), 64, [1, 2], out=into)
    assert x_into is into[0] and y_into is into[1]
    assert torch.equal(x_into, x) and torch.equal(y_into, y)


def test_fixed_sets_are_reproducible_and_respect_the_ranges():
    task = StaticArithTask(STATIC, NAU, seed=0)
    x1, _ = task.fixed_set("test/extrap")
    x2, _ = task.fixed_set("val_extrap")
    assert torch.equal(x1, x2)  # the solved_at watch and the final test use one set
    assert x1.min() >= 2 and x1.max() <= 6
    xi, _ = task.fixed_set("test/interp")
    xv, _ = task.fixed_set("val")
    assert xi.min() >= 1 and xi.max() <= 2 and not torch.equal(xi, xv)


def ideal_nau_nmu(task: StaticArithTask):
    model = task.build_model()
    a, b = task.subsets.masks(task.input_size)
    with torch.no_grad():
        model.first.W.copy_(torch.stack([a, b]))
        model.second.W.fill_(1.0)
    return model


def test_the_exact_solution_succeeds_and_the_threshold_has_the_published_scale():
    task = StaticArithTask(STATIC | {"op": "mul"}, NMU, seed=0)
    threshold = task.success_threshold()
    assert 0.05 < threshold < 0.5  # Madsen & Johansen's ε=1e-5 threshold for a*b on U[2,6] is about 0.16
    x, y = task.fixed_set("test/extrap")
    model = ideal_nau_nmu(task)
    with torch.no_grad():
        mse = (model(x).double() - y.double()).pow(2).mean().item()
    assert mse < threshold
    with torch.no_grad():
        model.first.W[0, task.subsets.a_start] = 0.99  # one weight off by 1e-2 fails the criterion
        worse = (model(x).double() - y.double()).pow(2).mean().item()
    assert worse > threshold


def test_normalized_error_is_zero_for_perfect_and_100_for_the_random_baseline():
    task = StaticArithTask(STATIC, NAU, seed=0)
    baseline = task.random_baseline_mse("test/extrap")
    assert task.finalize_metrics("test/extrap", {"mse": 0.0, "mae": 0.0})["normalized"] == 0.0
    out = task.finalize_metrics("test/extrap", {"mse": baseline, "mae": 1.0})
    assert out["normalized"] == pytest.approx(100.0)


def test_the_random_baseline_is_drawn_once_per_evaluation_set(monkeypatch):
    task = StaticArithTask(STATIC, NAU, seed=0)
    builds = []
    build = task.build_model
    monkeypatch.setattr(task, "build_model", lambda: builds.append(1) or build())
    extrap = task.random_baseline_mse("val/extrap")
    assert task.random_baseline_mse("test/extrap") == extrap  # one set, one baseline
    assert len(builds) == int(STATIC.get("baseline_draws", 10))
    assert task.random_baseline_mse("test/interp") != extrap  # another set: drawn anew
    assert len(builds) == 2 * int(STATIC.get("baseline_draws", 10))


def test_the_baseline_models_are_one_set_of_draws_for_every_seed_in_evaluation_mode():
    """An engine evaluates the baseline models of replica 0 on every replica's sets: they must not depend
    on the seed; they are measured as the error is (``model.eval()``)."""
    draws = int(STATIC.get("baseline_draws", 10))
    first = StaticArithTask(STATIC, NMU, seed=0).baseline_models("val")
    other = StaticArithTask(STATIC, NMU, seed=7).baseline_models("val")
    assert len(first) == len(other) == draws
    for a, b in zip(first, other, strict=True):
        assert not a.training and not b.training
        assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    assert not torch.equal(first[0].state_dict()["second.W"], first[1].state_dict()["second.W"])


def test_a_recorded_baseline_is_the_mean_of_the_finite_mses_and_is_not_measured_again():
    task = StaticArithTask(STATIC, NAU, seed=0)
    task.record_baseline("val_extrap", [1.0, math.inf, 3.0, math.nan])
    assert task.baseline_models("test/extrap") == []  # the extrapolation splits share the set
    assert task.random_baseline_mse("test/extrap") == 2.0
    task.record_baseline("val", [math.nan, math.inf])
    assert task.random_baseline_mse("val") == math.inf
    assert math.isnan(task.finalize_metrics("val", {"mse": 1.0, "mae": 1.0})["normalized"])
    assert len(task.baseline_models("test/interp")) == int(STATIC.get("baseline_draws", 10))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"op": "pow"}, "task.op='pow' is not valid; choose one of: add, sub, mul, div, square, sqrt"),
        ({"interp_range": [2, 1]}, "task.interp_range"),
        ({"op": "sqrt", "extrap_range": [-1, 2]}, "negative"),
        ({"subset_ratio": 0.9}, "do not fit"),
    ],
)
def test_bad_task_values_are_named_with_the_valid_choices(change, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        StaticArithTask(STATIC | change, NAU, seed=0)


def test_unknown_unit_names_the_layer_and_lists_the_units():
    with pytest.raises(ConfigError, match=r"unit.second='nope' is not valid; choose one of: .*nalu.*nau"):
        StaticArithTask(STATIC, NAU | {"second": "nope"}, seed=0)


def test_recurrent_targets_sum_over_time_and_extrapolation_is_longer():
    task = RecurrentArithTask(RECURRENT, NAU, seed=2)
    x, y = task.fixed_set("test/extrap")
    assert x.shape == (50, 1000, 10)
    s = task.subsets
    totals = x.double().sum(1)
    a = totals[:, s.a_start : s.a_stop].sum(1)
    b = totals[:, s.b_start : s.b_stop].sum(1)
    torch.testing.assert_close(y.squeeze(1).double(), a + b, rtol=1e-6, atol=1e-3)
    assert task.fixed_set("val")[0].shape[1] == 10


def test_recurrent_exact_accumulator_extrapolates_to_length_1000():
    task = RecurrentArithTask(RECURRENT, NAU, seed=2)
    model = task.build_model()
    a, b = task.subsets.masks(task.input_size)
    hidden = task.hidden_size
    with torch.no_grad():
        w = torch.zeros(hidden, task.input_size + hidden)
        w[0, : task.input_size], w[1, : task.input_size] = a, b
        w[:, task.input_size :] = torch.eye(hidden)  # h_t = subset sums of x_t + h_{t-1}
        model.cell.unit.W.copy_(w)
        model.second.W.fill_(1.0)
    x, y = task.fixed_set("test/extrap")
    with torch.no_grad():
        mse = (model(x).double() - y.double()).pow(2).mean().item()
    assert mse < task.success_threshold()


def test_recurrent_task_accepts_classic_cells_and_rejects_unknown_ones():
    task = RecurrentArithTask(RECURRENT, {"name": "lstm", "first": "lstm", "second": "linear"}, seed=0)
    x, _ = task.fixed_set("val")
    assert task.build_model()(x[:4]).shape == (4, 1)
    with pytest.raises(ConfigError, match="unit.first='lstmm'"):
        RecurrentArithTask(RECURRENT, {"name": "x", "first": "lstmm", "second": "linear"}, seed=0)


def test_the_static_task_whitens_its_nau_or_linear_first_layer_only():
    from nalu_suite.whitened_adam import uniform_whitening

    cfg = STATIC | {"op": "mul", "input_size": 10, "interp_range": [1, 3]}
    whitening = StaticArithTask(cfg, NMU, 0).input_whitening()
    assert list(whitening) == ["first.W"]
    assert torch.equal(whitening["first.W"], uniform_whitening(10, 1.0, 3.0))  # from task.interp_range
    names = dict(StaticArithTask(cfg, NMU, 0).build_model().named_parameters())
    assert names["first.W"].shape[-1] == 10
    nalu = {"name": "nalu", "first": "nalu", "second": "nalu"}
    assert StaticArithTask(cfg, nalu, 0).input_whitening() == {}


@pytest.mark.parametrize(
    ("change", "positive"),
    [({}, True), ({"interp_range": [-1, 2]}, False), ({"extrap_range": [0, 6]}, False)],
)
def test_the_first_layer_is_told_its_inputs_are_positive_only_when_both_ranges_are(change, positive):
    """``positive_inputs`` lets iNALU drop its sign retrieval; a range reaching 0 or below must keep it."""
    model = StaticArithTask(STATIC | change, {"first": "inalu", "second": "inalu"}, seed=0).build_model()
    assert model.first.positive_inputs is positive
    assert model.second.positive_inputs is False  # the hidden values can take any sign
