"""schedule.py: the regulariser ramp and solved_at, the one implementation both engines use."""

from __future__ import annotations

import math

import pytest

from nalu_suite.schedule import regularizer_weight, update_solved_at


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
