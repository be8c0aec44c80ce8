"""Reinforcement-learning environments (gymnasium). Importing this package registers
``nalu_suite/TimedGridWorld-v0`` (the NALU paper's §4.5 grid world) with gymnasium.

Only the grid-world task imports this package, so ``gymnasium`` stays out of every other task's imports.
"""

from __future__ import annotations

import gymnasium as gym

from nalu_suite.envs.batched import BatchedTimedGridWorld
from nalu_suite.envs.timed_gridworld import ACTION_NAMES, MOVES, TimedGridWorld, draw_start

ENV_ID = "nalu_suite/TimedGridWorld-v0"

if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="nalu_suite.envs.timed_gridworld:TimedGridWorld")

__all__ = ["ACTION_NAMES", "ENV_ID", "MOVES", "BatchedTimedGridWorld", "TimedGridWorld", "draw_start"]
