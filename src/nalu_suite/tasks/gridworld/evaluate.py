"""Success against the instruction T (Trask et al. 2018, §4.5, the paper's figure): many episodes per T,
all T at once in one batched environment; each step runs the agent only on the environments still going.

Success = the episode earned the reward (arrived first at exactly t = T); here success equals the reward.
"""

from __future__ import annotations

import torch

from nalu_suite.envs.batched import BatchedTimedGridWorld
from nalu_suite.tasks.gridworld.agents import GridAgent


@torch.no_grad()
def success_by_T(
    agent: GridAgent,
    env: BatchedTimedGridWorld,
    T_values: list[int],
    episodes: int,
    seed: int,
    greedy: bool = True,
) -> dict[int, float]:
    """``{T: success rate over `episodes` episodes}``; ``greedy``: the most probable action, else sampled."""
    generator = torch.Generator().manual_seed(seed)
    T = torch.tensor(T_values, dtype=torch.long).repeat_interleave(episodes)
    obs = env.reset(T, generator)
    state = agent.initial_state(len(T))
    reward = torch.zeros(len(T))
    while not env.done.all():
        live = (~env.done).nonzero().squeeze(1)
        logits, _, new_state = agent(obs["image"][live], obs["T"][live], tuple(s[live] for s in state))
        for s, new in zip(state, new_state, strict=True):
            s[live] = new
        if greedy:
            chosen = logits.argmax(1)
        else:
            chosen = torch.multinomial(torch.softmax(logits, 1), 1, generator=generator).squeeze(1)
        action = torch.zeros(len(T), dtype=torch.long)
        action[live] = chosen
        obs, r, _, _ = env.step(action)
        reward += r
    per_T = reward.view(len(T_values), episodes).mean(1)
    return {k: float(v) for k, v in zip(T_values, per_T, strict=True)}


@torch.no_grad()
def record_episode(agent: GridAgent, env: BatchedTimedGridWorld, T: int, seed: int, greedy: bool = True):
    """One episode as frames ``{"image", "t", "T", "agent", "target", "action", "reward"}`` (action: the one
    that led to the frame)."""
    generator = torch.Generator().manual_seed(seed)
    obs = env.reset(torch.tensor([T]), generator)
    state = agent.initial_state(1)
    frames = [_frame(env, obs, None, 0.0)]
    while not env.done.all():
        logits, _, state = agent(obs["image"], obs["T"], state)
        if greedy:
            action = logits.argmax(1)
        else:
            action = torch.multinomial(torch.softmax(logits, 1), 1, generator=generator).squeeze(1)
        obs, reward, _, _ = env.step(action)
        frames.append(_frame(env, obs, int(action[0]), float(reward[0])))
    return frames


def _frame(env: BatchedTimedGridWorld, obs, action: int | None, reward: float) -> dict:
    return {
        "image": obs["image"][0].numpy(),
        "t": int(env.t[0]),
        "T": int(env.T[0]),
        "agent": tuple(env.agent[0].tolist()),
        "target": tuple(env.target[0].tolist()),
        "action": action,
        "reward": reward,
    }
