"""The time-tracking grid world (Trask et al. 2018, §4.5) for ``N`` environments at once, in torch.

The same dynamics, observations and rewards as :class:`nalu_suite.envs.TimedGridWorld` (tested transition by
transition in ``tests/envs``), as tensors with a leading batch dimension. Two differences serve training:

* no automatic reset: an environment that has ended is *frozen* (its state stays, later steps give reward 0
  and report neither ``terminated`` nor ``truncated``) until the next :meth:`reset`; ``done`` says which.
  Training rolls out whole episodes of all ``N`` environments in lockstep (``tasks/gridworld/a2c.py``).
* :meth:`reset` draws all starts with a ``torch.Generator`` (the same distribution as
  :func:`~nalu_suite.envs.timed_gridworld.draw_start`); :meth:`reset_to` sets given starts, e.g. those of
  seeded gymnasium resets.
"""

from __future__ import annotations

import torch

from nalu_suite.envs.timed_gridworld import AGENT_CHANNEL, MOVES, TARGET_CHANNEL, pixel_cells


class BatchedTimedGridWorld:
    """``N`` grid worlds stepped together; state tensors ``agent``/``target`` (N, 2), ``T``/``t`` (N,)."""

    def __init__(self, grid_size: int = 5, image_size: int | None = None, extra_steps: int = 1) -> None:
        self.grid_size = grid_size
        self.image_size = image_size or grid_size
        self.extra_steps = extra_steps
        self._cells = torch.as_tensor(pixel_cells(grid_size, self.image_size))
        self._moves = torch.tensor(MOVES)
        self.agent = self.target = torch.zeros(0, 2, dtype=torch.long)
        self.T = self.t = torch.zeros(0, dtype=torch.long)
        self.done = torch.zeros(0, dtype=torch.bool)

    def reset(self, T: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Start ``len(T)`` episodes with instructions ``T`` (N,); agent and target uniform over the distinct
        cell pairs at Manhattan distance <= T."""
        T = torch.as_tensor(T, dtype=torch.long)
        agent = torch.empty(len(T), 2, dtype=torch.long)
        target = torch.empty(len(T), 2, dtype=torch.long)
        todo = torch.ones(len(T), dtype=torch.bool)
        while todo.any():  # rejection sampling, as draw_start
            k = int(todo.sum())
            a = torch.randint(self.grid_size, (k, 2), generator=generator)
            b = torch.randint(self.grid_size, (k, 2), generator=generator)
            agent[todo], target[todo] = a, b
            distance = (agent - target).abs().sum(1)
            todo = (distance == 0) | (distance > T)
        return self.reset_to(agent, target, T)

    def reset_to(self, agent, target, T) -> dict[str, torch.Tensor]:
        """Start episodes from the given ``agent`` and ``target`` cells (N, 2) and instructions ``T`` (N,)."""
        self.agent = torch.as_tensor(agent, dtype=torch.long).clone()
        self.target = torch.as_tensor(target, dtype=torch.long).clone()
        self.T = torch.as_tensor(T, dtype=torch.long).clone()
        self.t = torch.zeros_like(self.T)
        self.done = torch.zeros_like(self.T, dtype=torch.bool)
        return self.observation()

    def step(self, action: torch.Tensor):
        """``(observation, reward, terminated, truncated)`` after ``action`` (N,); ended environments stay."""
        live = ~self.done
        moved = (self.agent + self._moves[action]).clamp(0, self.grid_size - 1)
        self.agent = torch.where(live[:, None], moved, self.agent)
        self.t = self.t + live.long()
        arrived = live & (self.agent == self.target).all(1)
        reward = (arrived & (self.t == self.T)).float()
        truncated = live & ~arrived & (self.t >= self.T + self.extra_steps)
        self.done = self.done | arrived | truncated
        return self.observation(), reward, arrived, truncated

    def images(self) -> torch.Tensor:
        """uint8 (N, image_size, image_size, 3): red = target, green = agent, as the gymnasium class."""
        n = len(self.T)
        image = torch.zeros(n, self.image_size, self.image_size, 3, dtype=torch.uint8)
        for channel, cell in ((TARGET_CHANNEL, self.target), (AGENT_CHANNEL, self.agent)):
            rows = self._cells[None, :] == cell[:, :1]  # (N, H)
            cols = self._cells[None, :] == cell[:, 1:]  # (N, W)
            image[..., channel] = (rows[:, :, None] & cols[:, None, :]).to(torch.uint8) * 255
        return image

    def observation(self) -> dict[str, torch.Tensor]:
        return {"image": self.images(), "T": self.T[:, None].clone()}

    def info(self) -> dict[str, torch.Tensor]:
        return {
            "agent": self.agent.clone(),
            "target": self.target.clone(),
            "T": self.T.clone(),
            "t": self.t.clone(),
        }
