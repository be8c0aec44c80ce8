"""Synchronous advantage actor-critic (A2C) on whole episodes, with GAE (Schulman et al. 2016).

The paper trained with A3C (asynchronous workers, Mnih et al. 2016). A2C is its synchronous form: the
workers' environments become one batch of ``N`` environments stepped in lockstep and one gradient step
is taken on all their experience, which on one machine is as good and simpler (OpenAI Baselines' finding).
Every update here rolls out ``N`` *complete* episodes (at most ``T + 1`` steps, 13 for T <= 12), so the
recurrent agents are trained by back-propagation through the whole episode.

Loss per update, averaged over the live steps (an environment is live until its episode ends):

    L = -log pi(a|s) * A  +  value_coef * (V(s) - R)^2 / 2  -  entropy_coef * H(pi(.|s))

with ``A`` the GAE(gamma, lambda) advantage (normalised over the batch) and ``R = A + V`` the return target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.distributions import Categorical

from nalu_suite.envs.batched import BatchedTimedGridWorld
from nalu_suite.tasks.gridworld.agents import GridAgent


@dataclass
class Rollout:
    """Per-step tensors (steps, N) of a batch of whole episodes."""

    log_prob: torch.Tensor
    entropy: torch.Tensor
    value: torch.Tensor
    reward: torch.Tensor
    live: torch.Tensor  # the environment had not ended before this step


def rollout(
    agent: GridAgent, env: BatchedTimedGridWorld, T: torch.Tensor, generator: torch.Generator
) -> Rollout:
    """Run one episode in each of ``len(T)`` environments with sampled actions (graph kept for the loss)."""
    obs = env.reset(T, generator)
    state = agent.initial_state(len(T))
    steps: list[tuple[torch.Tensor, ...]] = []
    while not env.done.all():
        live = ~env.done
        logits, value, state = agent(obs["image"], obs["T"], state)
        dist = Categorical(logits=logits)
        action = torch.multinomial(dist.probs.detach(), 1, generator=generator).squeeze(1)
        obs, reward, _, _ = env.step(action)
        steps.append((dist.log_prob(action), dist.entropy(), value, reward, live))
    return Rollout(*(torch.stack(column) for column in zip(*steps, strict=True)))


def gae(reward, value, live, gamma: float, lam: float) -> torch.Tensor:
    """GAE advantages (steps, N); an episode's step after its last live step has value 0 (episodes end by
    arrival or time-out, after which no reward is possible, so a time-out is terminal too)."""
    value = value.detach() * live
    advantage = torch.zeros_like(reward)
    running = torch.zeros_like(reward[0])
    next_value = torch.zeros_like(reward[0])
    for k in reversed(range(len(reward))):
        next_live = live[k + 1] if k + 1 < len(reward) else torch.zeros_like(live[k])
        delta = reward[k] + gamma * next_value * next_live - value[k]
        running = delta + gamma * lam * next_live * running
        advantage[k] = running * live[k]
        next_value = value[k]
    return advantage


def a2c_loss(
    batch: Rollout, gamma: float, lam: float, value_coef: float, entropy_coef: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The A2C loss of a rollout and its parts (for logging)."""
    live = batch.live.float()
    advantage = gae(batch.reward, batch.value, live, gamma, lam)
    target = advantage + batch.value.detach()
    count = live.sum()
    mean_adv = advantage.sum() / count
    std_adv = (((advantage - mean_adv) * live) ** 2).sum().div(count).sqrt()
    normalised = (advantage - mean_adv) / (std_adv + 1e-8)
    policy = -(batch.log_prob * normalised * live).sum() / count
    value = 0.5 * (((batch.value - target) ** 2) * live).sum() / count
    entropy = (batch.entropy * live).sum() / count
    loss = policy + value_coef * value - entropy_coef * entropy
    return loss, {"policy_loss": policy, "value_loss": value, "entropy": entropy}
