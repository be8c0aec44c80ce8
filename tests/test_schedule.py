"""schedule.py: the regulariser ramp and solved_at, the one implementation both engines use."""

from __future__ import annotations

import math

import pytest

from nalu_suite.schedule import regularizer_open, regularizer_weight, update_solved_at


def test_the_regulariser_ramps_linearly_between_start_and_end():
    reg = {"weight": 2.0, "start": 10, "end": 30}
    assert [regularizer_weight(reg, s) for s in (0, 10, 20, 30, 100)] == [0.0, 0.0, 1.0, 2.0, 2.0]


def test_a_ramp_without_length_switches_on_at_start_and_weight_zero_is_off():
    assert [regularizer_weight({"weight": 1.0, "start": 5, "end": 5}, s) for s in (4, 5, 6)] == [0, 1, 1]
    assert regularizer_weight({"weight": 0.0, "start": 0, "end": 10}, 5) == 0.0


@pytest.mark.parametrize(
    ("solved_at", "value", "threshold", "expected"),
    [
        (None, 0.5, 1.0, 7),  # first time below the threshold: this step
        (None, 1.5, 1.0, None),  # above: still unsolved
        (3, 0.5, 1.0, 3),  # solved earlier: kept
        (None, math.nan, 1.0, None),  # NaN never solves
        (None, 0.5, None, None),  # no threshold: nothing to solve
        (None, None, 1.0, None),  # nothing watched
    ],
)
def test_solved_at_is_the_first_validation_below_the_threshold(solved_at, value, threshold, expected):
    assert update_solved_at(solved_at, value, threshold, step=7) == expected


# the Primer's NPU / RealNPU beta for x: 1e-7, x10 every 10k steps, 1e-5 from step 20k on
STAIRCASE = {"weight": 1e-5, "start": 0, "end": 20000, "growth": 10, "every": 10000}


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 1e-7), (9999, 1e-7), (10000, 1e-6), (19999, 1e-6), (20000, 1e-5), (49999, 1e-5)],
)
def test_the_staircase_multiplies_by_growth_every_every_steps_up_to_weight(step, expected):
    assert regularizer_weight(STAIRCASE, step) == pytest.approx(expected, rel=1e-12)


def test_the_staircase_is_off_before_start_and_capped_at_weight():
    reg = {"weight": 1e-7, "start": 100, "end": 130, "growth": 10, "every": 10}  # the Primer's ÷: 1e-9 ->
    values = [regularizer_weight(reg, s) for s in (0, 99, 100, 110, 120, 129, 130, 10**6)]
    assert values == pytest.approx([0, 0, 1e-10, 1e-9, 1e-8, 1e-8, 1e-7, 1e-7], rel=1e-12, abs=0)
    assert max(regularizer_weight(reg, s) for s in range(0, 400)) == 1e-7  # never above weight


def test_null_growth_keeps_the_linear_ramp_bit_for_bit():
    linear = {"weight": 2.0, "start": 10, "end": 30}
    for step in range(0, 40, 3):
        with_keys = linear | {"growth": None, "every": None}
        assert regularizer_weight(with_keys, step) == regularizer_weight(linear, step)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"growth": 1}, "regularizer.growth (null: the linear ramp)=1 must be > 1"),
        ({"growth": "x"}, "regularizer.growth (null: the linear ramp)='x' must be a finite number > 1"),
        ({"growth": 10, "every": None}, "regularizer.growth=10 needs regularizer.every"),
        ({"growth": None, "every": 5}, "regularizer.every=5 needs regularizer.growth"),
        ({"growth": 10, "every": 0}, "regularizer.every (steps between the factors of regularizer.growth)=0"),
        ({"growth": 10, "every": 3}, "20000 - 0 must be a positive multiple of regularizer.every=3"),
        ({"growth": 10, "every": 10, "end": 0}, "0 - 0 must be a positive multiple"),
    ],
)
def test_bad_staircase_values_are_config_errors_naming_the_key(values, message):
    from nalu_suite.errors import ConfigError
    from nalu_suite.runtime import check_regularizer

    with pytest.raises(ConfigError) as err:
        check_regularizer(STAIRCASE | values)
    assert message in str(err.value)


def test_the_staircase_keys_work_from_the_command_line(make_cfg):
    from nalu_suite.errors import ConfigError
    from nalu_suite.runtime import validate

    cfg = make_cfg("task=smat", "unit=npu", "task.threshold_samples=100", "regularizer.every=5000")
    assert cfg.regularizer.growth == 10 and cfg.regularizer.every == 5000  # SMAT's NPU: the Primer's
    validate(cfg)
    with pytest.raises(ConfigError, match="regularizer.growth"):
        validate(make_cfg("task=smat", "unit=npu", "task.threshold_samples=100", "regularizer.growth=0.5"))


def test_the_gate_opens_only_below_its_value_after_a_validation():
    import torch

    assert regularizer_open({}, None) is True and regularizer_open({"gate": None}, 5.0) is True
    gated = {"gate": 1.0}
    assert regularizer_open(gated, None) is False  # no validation yet
    assert regularizer_open(gated, 0.5) is True and regularizer_open(gated, 1.0) is False
    assert regularizer_open(gated, math.nan) is False
    per_replica = regularizer_open(gated, torch.tensor([0.5, 1.0, 2.0, math.nan]))
    assert per_replica.tolist() == [True, False, False, False]


def test_a_bad_gate_is_a_config_error_naming_the_key():
    from nalu_suite.errors import ConfigError
    from nalu_suite.runtime import check_regularizer

    for bad in (0, -1.0, "low"):
        with pytest.raises(ConfigError, match="regularizer.gate"):
            check_regularizer({"weight": 1.0, "gate": bad})
