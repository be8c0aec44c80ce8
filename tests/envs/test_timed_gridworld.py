"""The §4.5 grid world: the gymnasium contract, the dynamics, and the batched twin's identical transitions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from nalu_suite.envs import ENV_ID, BatchedTimedGridWorld, TimedGridWorld

PASS, UP, DOWN, LEFT, RIGHT = range(5)


def toward(agent, target) -> int:
    """A move that shortens the distance to the target."""
    if agent[0] != target[0]:
        return DOWN if target[0] > agent[0] else UP
    return RIGHT if target[1] > agent[1] else LEFT


def distance(info) -> int:
    return abs(info["agent"][0] - info["target"][0]) + abs(info["agent"][1] - info["target"][1])


def run(env, info, policy):
    """Step ``policy(info)`` until the episode ends; return the last (reward, terminated, truncated, info)."""
    while True:
        _, reward, terminated, truncated, info = env.step(policy(info))
        if terminated or truncated:
            return reward, terminated, truncated, info


def test_registered_on_import_and_check_env_passes():
    env = gym.make(ENV_ID)
    check_env(env.unwrapped)
    check_env(TimedGridWorld(image_size=56, T_values=[1, 20]))


@pytest.mark.parametrize("seed", range(20))
def test_waiting_then_walking_arrives_at_T_with_reward_1(seed):
    env = TimedGridWorld()
    _, info = env.reset(seed=seed)
    assert 0 < distance(info) <= info["T"]
    wait_then_walk = lambda i: PASS if i["T"] - i["t"] > distance(i) else toward(i["agent"], i["target"])  # noqa: E731
    reward, terminated, truncated, info = run(env, info, wait_then_walk)
    assert (reward, terminated, truncated, info["t"]) == (1.0, True, False, info["T"])


@pytest.mark.parametrize("seed", range(10))
def test_early_arrival_ends_the_episode_with_reward_0(seed):
    env = TimedGridWorld()
    _, info = env.reset(seed=seed, options={"T": 12})
    reward, terminated, truncated, info = run(env, info, lambda i: toward(i["agent"], i["target"]))
    assert (reward, terminated, truncated) == (0.0, True, False)
    assert info["t"] < 12 and info["agent"] == info["target"]


def test_waiting_forever_times_out_at_T_plus_extra_steps_with_reward_0():
    for extra in (1, 3):
        env = TimedGridWorld(extra_steps=extra)
        _, info = env.reset(seed=0, options={"T": 7})
        reward, terminated, truncated, info = run(env, info, lambda i: PASS)
        assert (reward, terminated, truncated, info["t"]) == (0.0, False, True, 7 + extra)


def test_walls_keep_the_agent_in_place_and_pass_only_advances_time():
    env = TimedGridWorld(T_values=[20])
    _, info = env.reset(seed=3)
    env.agent, env.target = (0, 0), (4, 4)
    for action, expected in ((UP, (0, 0)), (LEFT, (0, 0)), (PASS, (0, 0)), (DOWN, (1, 0)), (RIGHT, (1, 1))):
        _, reward, terminated, truncated, info = env.step(action)
        assert info["agent"] == expected and reward == 0.0 and not terminated and not truncated
    assert info["t"] == 5
    env.agent = (4, 4 - 1)
    env.target = (4, 4)
    _, _, _, _, info = env.step(RIGHT)
    assert info["agent"] == (4, 4)
    env.agent = (4, 4)
    env.target = (0, 0)
    for action in (DOWN, RIGHT):
        _, _, _, _, info = env.step(action)
        assert info["agent"] == (4, 4)


def test_observation_shows_target_red_agent_green_and_T():
    env = TimedGridWorld(image_size=56)
    obs, info = env.reset(seed=5, options={"T": 9})
    assert obs["T"].tolist() == [9] and obs["image"].shape == (56, 56, 3)
    red = np.argwhere(obs["image"][..., 0] == 255)
    green = np.argwhere(obs["image"][..., 1] == 255)
    assert {tuple(p * 5 // 56) for p in red} == {info["target"]}
    assert {tuple(p * 5 // 56) for p in green} == {info["agent"]}
    assert min(len(red), len(green)) >= 11 * 11  # 56 px over 5 cells: 11 or 12 px per cell


def test_bad_options_and_actions_are_refused():
    env = TimedGridWorld()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="options"):
        env.reset(options={"T": 0})
    with pytest.raises(ValueError, match="action=7"):
        env.step(7)


def test_batched_transitions_equal_the_gymnasium_class():
    """For 40 seeded gymnasium episodes with random actions, the batched environment started from the same
    states gives the same observation, reward, terminated, truncated and info at every step."""
    rng = np.random.default_rng(0)
    n, image_size = 40, 7
    envs = [TimedGridWorld(T_values=range(1, 15), image_size=image_size, extra_steps=2) for _ in range(n)]
    infos = [env.reset(seed=seed)[1] for seed, env in enumerate(envs)]
    batched = BatchedTimedGridWorld(image_size=image_size, extra_steps=2)
    obs = batched.reset_to([i["agent"] for i in infos], [i["target"] for i in infos], [i["T"] for i in infos])
    ended = [False] * n
    steps = 0
    while not all(ended):
        actions = rng.integers(5, size=n)
        obs, reward, terminated, truncated = batched.step(torch.as_tensor(actions))
        info = batched.info()
        for k, env in enumerate(envs):
            if ended[k]:
                assert not terminated[k] and not truncated[k] and reward[k] == 0
                continue
            o, r, te, tr, inf = env.step(int(actions[k]))
            assert np.array_equal(o["image"], obs["image"][k].numpy())
            assert o["T"].tolist() == obs["T"][k].tolist()
            assert (r, te, tr) == (float(reward[k]), bool(terminated[k]), bool(truncated[k]))
            assert inf["agent"] == tuple(info["agent"][k].tolist()) and inf["t"] == int(info["t"][k])
            ended[k] = te or tr
        steps += 1
    assert steps >= 10 and batched.done.all()


def test_batched_reset_draws_valid_starts_for_every_T():
    env = BatchedTimedGridWorld()
    T = torch.arange(1, 11).repeat(500)
    env.reset(T, torch.Generator().manual_seed(0))
    d = (env.agent - env.target).abs().sum(1)
    assert ((d >= 1) & (d <= T)).all()
    assert (d[T == 1] == 1).all() and (d[T >= 8] == 8).any()  # 8 is the largest distance on 5 x 5
