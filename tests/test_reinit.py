"""reinit.py: iNALU's rule for re-initialising stuck runs, the one implementation both engines use."""

from __future__ import annotations

import math

import pytest
import torch

from nalu_suite.errors import ConfigError
from nalu_suite.reinit import StuckRuns, check_reinit, fresh_parameters

RULE = {"every": 10, "min_losses": 50, "threshold": 1.0}


def fired_steps(losses: list[float], cfg=RULE) -> list[int]:
    """The steps at which one run with these training losses is re-initialised."""
    stuck, steps = StuckRuns(cfg, runs=1, capacity=8), []
    for step, loss in enumerate(losses):
        if bool(stuck.record(step, torch.tensor([loss]))[0]):
            steps.append(step)
            stuck.cleared(torch.ones(1, dtype=torch.bool))
    return steps


def test_a_flat_loss_above_the_threshold_fires_every_time_enough_losses_are_stored():
    # more than 50 stored first at step 50; then cleared, 51 more at step 110 (losses of 51..110)
    assert fired_steps([5.0] * 200) == [50, 110, 170]


def test_an_improving_or_low_loss_never_fires():
    assert fired_steps([1000.0 / (1 + s) ** 2 + 2.0 for s in range(300)]) == []  # falling fast: improving
    assert fired_steps([0.5] * 300) == []  # stuck, but below the threshold: solved enough
    assert fired_steps([5.0] * 300, RULE | {"every": 0}) == []  # off


def test_the_standard_deviation_of_the_later_half_lets_a_slowly_falling_noisy_loss_fire():
    noisy = [10.0 - 0.001 * s + (3.0 if s % 2 else -3.0) for s in range(51)]
    assert fired_steps(noisy) == [50]  # first-half mean ~9.87 <= ~10.08 + sd ~3
    smooth = [10.0 - 0.01 * s for s in range(51)]
    assert fired_steps(smooth) == []  # 9.88 > 9.625 + sd 0.075


def test_the_halves_split_as_the_papers_code_does():
    """Checks at step 60 with 61 losses: first half = 30 losses, second half = 31 (the odd one)."""
    losses = [2.0] * 30 + [2.0 + 1e-9] + [2.0] * 30
    stuck = StuckRuns(RULE, runs=1)
    for step, loss in enumerate(losses):
        fired = stuck.record(step, torch.tensor([loss]))
    assert bool(fired[0])  # 2.0 <= mean of the second half
    losses = [3.0] * 30 + [1.0] * 31
    stuck = StuckRuns(RULE, runs=1)
    for step, loss in enumerate(losses):
        fired = stuck.record(step, torch.tensor([loss]))
    assert not bool(fired[0])  # the later half's mean is 1.0: not above the threshold


def test_each_runs_decision_is_its_own_and_independent_of_the_runs_stacked_with_it():
    g = torch.Generator().manual_seed(0)
    histories = torch.rand(3, 400, generator=g, dtype=torch.float64) * torch.tensor([[4.0], [40.0], [0.9]])
    histories[1, 150:] = math.nan  # a diverged run: stored as 0, never fires once low
    stacked = StuckRuns(RULE, runs=3, capacity=16)
    alone = [StuckRuns(RULE, runs=1, capacity=16) for _ in range(3)]
    fired_stacked, fired_alone = [], []
    for step in range(400):
        fired = stacked.record(step, histories[:, step].float())
        stacked.cleared(fired)
        fired_stacked.append(fired.tolist())
        row = []
        for k, run in enumerate(alone):
            f = run.record(step, histories[k, step].float().reshape(1))
            run.cleared(f)
            row.append(bool(f[0]))
        fired_alone.append(row)
    assert fired_stacked == fired_alone
    assert stacked.count == [run.count[0] for run in alone]
    assert stacked.count[0] > 0 and stacked.count[2] == 0  # uniform noise on [0, 4] fires; below 1 never


def test_fresh_parameters_depend_on_seed_and_step_only_and_leave_the_global_generator_alone(make_cfg):
    from nalu_suite.runtime import validate

    task = validate(make_cfg("task=smat", "unit=inalu", "task.threshold_samples=100", "seed=3"))
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b, c = fresh_parameters(task, 3, 10), fresh_parameters(task, 3, 10), fresh_parameters(task, 3, 20)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert a.keys() == dict(task.build_model().named_parameters()).keys()
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not all(torch.equal(a[n], c[n]) for n in a)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"every": -1}, "reinit.every (steps between checks; 0: off)=-1 must be an integer >= 0"),
        ({"every": 2.5}, "reinit.every (steps between checks; 0: off)=2.5 must be an integer >= 0"),
        ({"min_losses": 0}, "reinit.min_losses=0 must be an integer >= 1"),
        ({"threshold": -1.0}, "reinit.threshold=-1.0 must be >= 0"),
        ({"threshold": "high"}, "reinit.threshold='high' must be a finite number >= 0"),
        ({"window": 3}, "reinit.window is not a setting; choose from: every, min_losses, threshold, signal"),
        ({"signal": "val/mse"}, "reinit.signal='val/mse' is not valid; choose from: loss, validation"),
    ],
)
def test_bad_reinit_values_are_config_errors_naming_the_key(cfg, message):
    with pytest.raises(ConfigError) as err:
        check_reinit(cfg)
    assert message in str(err.value)


def test_the_command_line_turns_it_on_and_smat_turns_it_on_for_inalu_only(make_cfg):
    from nalu_suite.runtime import validate

    fast = ("task=smat", "task.threshold_samples=100")
    assert make_cfg(*fast, "unit=inalu").reinit.every == 10
    assert make_cfg(*fast, "unit=inalu").reinit.signal == "validation"  # the Primer's
    assert make_cfg(*fast, "unit=nmu").reinit.signal == "loss"
    assert make_cfg(*fast, "unit=nmu").reinit.every == 0
    assert make_cfg("task=static_arith").reinit.every == 0
    with pytest.raises(ConfigError, match="reinit.min_losses=0"):
        validate(make_cfg(*fast, "unit=inalu", "reinit.min_losses=0"))
    with pytest.raises(ConfigError, match="task=gridworld trains with its own LightningModule"):
        validate(make_cfg("task=gridworld", "reinit.every=10"))
    with pytest.raises(ConfigError, match="reinit.every=10 needs one process"):
        validate(make_cfg(*fast, "unit=inalu", "trainer=ddp_cpu", "trainer.devices=2"))


def test_the_signal_is_the_training_loss_or_the_latest_validation_value():
    loss, latest = torch.tensor([3.0]), torch.tensor([7.0])
    assert StuckRuns(RULE, runs=1).watched(loss, latest) is loss
    validation = StuckRuns(RULE | {"signal": "validation"}, runs=1)
    assert validation.watched(loss, latest) is latest
    assert validation.watched(loss, None) is None  # nothing stored before the first validation
    one_run = validation.watched(loss, 7.0)  # a plain run's float, as the replicas' float32 values
    assert one_run.dtype == torch.float32 and one_run.tolist() == [7.0]
