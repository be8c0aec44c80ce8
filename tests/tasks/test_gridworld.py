"""The §4.5 grid-world task: A2C's advantages, the batched evaluation, a short training run that beats a
random policy (with its metrics, figure, checkpoint and rendered episode), and bad config values."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from nalu_suite.envs import BatchedTimedGridWorld
from nalu_suite.errors import ConfigError
from nalu_suite.runtime import validate
from nalu_suite.tasks.gridworld.a2c import gae
from nalu_suite.tasks.gridworld.agents import N_ACTIONS, GridAgent
from nalu_suite.tasks.gridworld.evaluate import success_by_T

SHORT_T = [3, 5]


class ScriptedAgent(GridAgent):
    """Reads the cells off the one-pixel-per-cell image; waits until the time left equals the distance,
    then walks (``perfect=False``: uniform logits, a random policy)."""

    def __init__(self, perfect: bool = True) -> None:
        super().__init__()
        self.perfect = perfect

    def initial_state(self, n):
        return (torch.zeros(n),)

    def forward(self, image, T, state):
        (t,) = state
        n = len(image)
        logits = torch.zeros(n, N_ACTIONS)
        if self.perfect:
            target = image[..., 0].flatten(1).argmax(1)
            agent = image[..., 1].flatten(1).argmax(1)
            size = image.shape[1]
            dr, dc = target // size - agent // size, target % size - agent % size
            move = torch.where(dr > 0, 2, torch.where(dr < 0, 1, torch.where(dc > 0, 4, 3)))
            wait = T.squeeze(1) - t > dr.abs() + dc.abs()
            logits[torch.arange(n), torch.where(wait, 0, move)] = 1.0
        return logits, torch.zeros(n), (t + 1,)


def test_gae_sums_the_reward_back_through_an_episode_and_stops_at_its_end():
    reward = torch.tensor([[0.0], [0.0], [1.0], [0.0]])
    live = torch.tensor([[1.0], [1.0], [1.0], [0.0]])  # the episode ended at the third step
    value = torch.full((4, 1), 0.5)
    advantage = gae(reward, value, live, gamma=1.0, lam=1.0)
    assert advantage.squeeze(1).tolist() == [0.5, 0.5, 0.5, 0.0]  # return 1 minus the value 0.5
    discounted = gae(reward, torch.zeros(4, 1), live, gamma=0.5, lam=1.0)
    assert discounted.squeeze(1).tolist() == [0.25, 0.5, 1.0, 0.0]


def test_clock_agent_starts_at_T_minus_t_and_only_its_pass_logit_grows_with_the_time_left():
    from nalu_suite.tasks.gridworld.agents import build_agent

    agent = build_agent("nau", image_size=5, hidden=16, nac_outputs=1)
    assert agent.time_left.W.tolist() == [[1.0, -1.0]]
    image = BatchedTimedGridWorld().reset(torch.tensor([9, 9]), torch.Generator().manual_seed(0))["image"]
    image = image[:1].repeat(2, 1, 1, 1)
    logits, _, (elapsed,) = agent(image, torch.tensor([[10], [100]]), agent.initial_state(2))
    assert elapsed.flatten().tolist() == [1.0, 1.0]
    assert torch.allclose(logits[0, 1:], logits[1, 1:])  # the moves read the image only
    assert logits[1, 0] - logits[0, 0] >= 90 - 1e-4  # pass: + gain * 90 more time left, gain >= 1


def test_batched_evaluation_scores_a_perfect_policy_1_and_a_random_one_low():
    env = BatchedTimedGridWorld()
    perfect = success_by_T(ScriptedAgent(), env, list(range(1, 41)), episodes=50, seed=0)
    assert set(perfect.values()) == {1.0}
    random = success_by_T(ScriptedAgent(perfect=False), env, [5, 12], episodes=400, seed=0, greedy=False)
    assert all(v < 0.1 for v in random.values())


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, cfg_in):
    """A few seconds of training of the default (clock) agent on T in 3..5."""
    from nalu_suite.train import train

    out = tmp_path_factory.mktemp("gridworld") / "run"
    cfg = cfg_in(
        out,
        "task=gridworld",
        "callbacks.progress_bar=null",
        "logger=csv",
        "trainer.max_steps=160",
        "trainer.val_check_interval=80",
        "task.envs=128",
        "optim.lr=1e-2",
        f"task.train_T=[{SHORT_T[0]},{SHORT_T[1]}]",
        "task.test_T=[2,7]",
        "task.val_episodes=20",
        "task.test_episodes=200",
        "regularizer.start=0",
        "regularizer.end=60",
    )
    return train(cfg), out


def test_a_short_training_run_beats_a_random_policy(short_run):
    results, _ = short_run
    random = success_by_T(
        ScriptedAgent(perfect=False), BatchedTimedGridWorld(), list(range(3, 6)), 200, seed=1, greedy=False
    )
    random_success = sum(random.values()) / len(random)
    assert results["test/interp/success"] > 2 * random_success + 0.05


def test_the_run_logs_per_T_metrics_and_writes_figure_checkpoint_and_results(short_run):
    results, out = short_run
    for k in range(2, 8):
        assert 0.0 <= results[f"test/T{k}/success"] == results[f"test/T{k}/reward"] <= 1.0
    interp = sum(results[f"test/T{k}/success"] for k in range(3, 6)) / 3
    assert results["test/interp/success"] == pytest.approx(interp, abs=1e-6)
    assert results["test/extrap/success"] == pytest.approx(
        (results["test/T6/success"] + results["test/T7/success"]) / 2, abs=1e-6
    )
    assert (out / "results.json").exists() and (out / "gridworld_success.png").exists()
    assert (out / "checkpoints" / "best.ckpt").exists() and (out / "csv" / "metrics.csv").exists()


def test_render_script_draws_an_episode_of_the_checkpoint(short_run, tmp_path):
    from pathlib import Path

    _, out = short_run
    script = Path(__file__).resolve().parents[2] / "scripts" / "render_gridworld.py"
    png = tmp_path / "episode.png"
    done = subprocess.run(
        [sys.executable, str(script), str(out / "checkpoints" / "best.ckpt"), "--T", "6", "--out", str(png)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert png.stat().st_size > 1000 and "steps, reward" in done.stdout


def test_eval_tests_the_checkpoint_on_other_T(short_run, tmp_path):
    from nalu_suite.evaluate import evaluate

    _, out = short_run
    ckpt = str(out / "checkpoints" / "best.ckpt")
    results = evaluate(ckpt, ["task.test_T=[20,21]", "task.test_episodes=20"], str(tmp_path))
    assert set(results) >= {"test/T20/success", "test/T21/reward", "test/extrap/success"}
    assert "test/T5/success" not in results and (tmp_path / "results.json").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("unit=nalu", "unit (the grid-world agent)='nalu' is not valid; choose one of: lstm, nac, nau"),
        ("task.train_T=[12,5]", "task.train_T=[12, 5] is empty"),
        ("task.test_T=5", "task.test_T=5 must be a pair [low, high]"),
        ("task.envs=0", "task.envs=0 must be a positive integer"),
        ("task.gamma=1.5", "task.gamma=1.5 must be in [0, 1]"),
        ("task.image_size=3", "task.image_size=3 must be an integer in [5, 512]"),
        ("task.clock_init=ones", "task.clock_init='ones' is not valid; choose one of: exact, zero, uniform"),
    ],
)
def test_bad_values_fail_in_one_line_naming_the_value(make_cfg, override, message):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg("task=gridworld", override))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_other_tasks_do_not_import_gymnasium():
    code = "import sys, nalu_suite.train, nalu_suite.tasks.static_arith; print('gymnasium' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
