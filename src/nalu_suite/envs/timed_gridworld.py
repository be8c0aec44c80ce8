"""The NALU paper's time-tracking grid world (Trask et al. 2018, §4.5) as a ``gymnasium.Env``.

A ``grid_size`` x ``grid_size`` grid holds the agent and one red target on distinct cells, drawn uniformly
among the placements whose Manhattan distance is at most the instruction ``T`` (so the target is reachable
in time). ``T`` is drawn from ``T_values`` at reset (``reset(options={"T": k})`` fixes it).

* Actions: 0 pass (stay), 1 up, 2 down, 3 left, 4 right; a move into a wall leaves the agent in place.
* Time: ``t = 0`` after reset, +1 per step.
* End: *terminated* the first time the agent stands on the target; *truncated* at the time-out
  ``t == T + extra_steps`` (default ``extra_steps=1``: by then no reward is possible any more, and a late
  arrival at ``T + 1`` is still visible).
* Reward: 1 if and only if the agent first stands on the target at ``t == T``; 0 otherwise. No shaping.
* Observation: ``{"image": uint8 (image_size, image_size, 3), "T": int64 (1,)}``. Red channel = target,
  green channel = agent; pixel ``(i, j)`` shows cell ``(i * grid_size // image_size, ...)``. The default
  ``image_size = grid_size`` is one pixel per cell; the paper used 56 x 56 (``image_size=56``).
* ``info``: ``agent`` and ``target`` as (row, col), ``T`` and ``t``, at reset and every step.

:class:`nalu_suite.envs.batched.BatchedTimedGridWorld` runs the same dynamics on thousands of
environments at once (torch); ``draw_start`` is the one start-state sampler both use for seeded resets.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

#: action -> (d_row, d_col): 0 pass, 1 up, 2 down, 3 left, 4 right
MOVES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
ACTION_NAMES = ("pass", "up", "down", "left", "right")
#: image channels
TARGET_CHANNEL, AGENT_CHANNEL = 0, 1
#: the largest instruction the observation space admits
MAX_T = 10_000


def draw_start(
    rng: np.random.Generator, grid_size: int, T_values: Sequence[int], T: int | None = None
) -> tuple[tuple[int, int], tuple[int, int], int]:
    """``(agent, target, T)``: ``T`` from ``T_values`` unless given, then agent and target uniform over the
    distinct cell pairs at Manhattan distance <= T (rejection sampling)."""
    if T is None:
        T = int(T_values[int(rng.integers(len(T_values)))])
    while True:
        a, b = rng.integers(grid_size, size=2), rng.integers(grid_size, size=2)
        distance = abs(int(a[0]) - int(b[0])) + abs(int(a[1]) - int(b[1]))
        if 0 < distance <= T:
            return (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), int(T)


def pixel_cells(grid_size: int, image_size: int) -> np.ndarray:
    """The grid row (or column) that each image row (or column) shows."""
    return np.arange(image_size) * grid_size // image_size


class TimedGridWorld(gym.Env):
    """Reach the target exactly at time ``T`` (module docstring for the whole contract)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        grid_size: int = 5,
        T_values: Sequence[int] = tuple(range(5, 13)),
        image_size: int | None = None,
        extra_steps: int = 1,
        render_mode: str | None = None,
    ) -> None:
        if grid_size < 2:
            raise ValueError(f"grid_size={grid_size} must be >= 2")
        if not T_values or min(T_values) < 1 or max(T_values) > MAX_T:
            raise ValueError(f"T_values={list(T_values)} must be integers in [1, {MAX_T}]")
        if extra_steps < 1:
            raise ValueError(f"extra_steps={extra_steps} must be >= 1")
        self.grid_size = grid_size
        self.T_values = tuple(int(v) for v in T_values)
        self.image_size = image_size or grid_size
        self.extra_steps = extra_steps
        self.render_mode = render_mode
        self._cells = pixel_cells(grid_size, self.image_size)
        self.action_space = spaces.Discrete(len(MOVES))
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8),
                "T": spaces.Box(1, MAX_T, (1,), np.int64),
            }
        )
        self.agent = self.target = (0, 0)
        self.T = self.T_values[0]
        self.t = 0

    def _image(self) -> np.ndarray:
        image = np.zeros((self.image_size, self.image_size, 3), np.uint8)
        for channel, (row, col) in ((TARGET_CHANNEL, self.target), (AGENT_CHANNEL, self.agent)):
            image[np.ix_(self._cells == row, self._cells == col, [channel])] = 255
        return image

    def _obs(self) -> dict[str, np.ndarray]:
        return {"image": self._image(), "T": np.array([self.T], np.int64)}

    def _info(self) -> dict[str, object]:
        return {"agent": self.agent, "target": self.target, "T": self.T, "t": self.t}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        T = (options or {}).get("T")
        if T is not None and not (isinstance(T, (int, np.integer)) and 1 <= T <= MAX_T):
            raise ValueError(f"options['T']={T!r} must be an integer in [1, {MAX_T}]")
        self.agent, self.target, self.T = draw_start(self.np_random, self.grid_size, self.T_values, T)
        self.t = 0
        return self._obs(), self._info()

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(
                f"action={action!r} is not one of 0..{len(MOVES) - 1} ({', '.join(ACTION_NAMES)})"
            )
        d_row, d_col = MOVES[int(action)]
        row = min(max(self.agent[0] + d_row, 0), self.grid_size - 1)
        col = min(max(self.agent[1] + d_col, 0), self.grid_size - 1)
        self.agent = (row, col)
        self.t += 1
        terminated = self.agent == self.target
        reward = 1.0 if terminated and self.t == self.T else 0.0
        truncated = not terminated and self.t >= self.T + self.extra_steps
        return self._obs(), reward, terminated, truncated, self._info()

    def render(self):
        return self._image() if self.render_mode == "rgb_array" else None
