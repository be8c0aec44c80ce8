"""Grid-world time tracking (Trask et al. 2018, §4.5): arrive on the red target exactly at time T.

Train on T in ``train_T`` (the paper's 5..12) with A2C (``a2c.py``); validate on the training T values
(``val/success``; checkpoints keep the lowest ``val/failure``); test on every T in ``test_T`` (1..100):
``test/T{k}/success`` and ``test/T{k}/reward`` per T, ``test/interp/success`` (mean over the training T),
``test/extrap/success`` (mean over T above the training range) and ``test/extrap/worst_success`` (its
worst T). The figure ``gridworld_success.png`` plots success against T (the paper's plot).
``unit=lstm|nac|nau`` picks the agent (``agents.py``). The Lightning module is ``system.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nalu_suite.errors import ConfigError, check_choice, check_int, check_number, check_positive_int
from nalu_suite.tasks.base import Task
from nalu_suite.tasks.gridworld.agents import AGENTS, CLOCK_INITS, GridAgent, build_agent


def _T_range(what: str, value) -> list[int]:
    """The T values of a ``[low, high]`` config pair (both included)."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"{what}={value!r} must be a pair [low, high] of instructions (both included)")
    low = check_positive_int(f"{what}[0]", value[0])
    high = check_positive_int(f"{what}[1]", value[1])
    if high < low:
        raise ConfigError(f"{what}={list(value)} is empty; the lower bound must be at most the upper bound")
    return list(range(low, high + 1))


#: A2C's config values and their defaults (``conf/task/gridworld.yaml``)
A2C_DEFAULTS = {
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "value_coef": 0.5,
    "entropy_coef": 0.01,
    "entropy_final": 0.0,
}


class GridWorldTask(Task):
    name = "gridworld"
    val_splits = ("val",)
    test_splits = ("test",)
    monitor = "val/failure"

    def __init__(self, task: dict[str, Any], unit: dict[str, Any], seed: int) -> None:
        super().__init__(task, unit, seed)
        self.agent_name = unit.get("name")
        check_choice("unit (the grid-world agent)", self.agent_name, AGENTS)
        self.grid_size = check_int("task.grid_size", task.get("grid_size", 5), 2, 64)
        self.image_size = check_int(
            "task.image_size", task.get("image_size", self.grid_size), self.grid_size, 512
        )
        self.extra_steps = check_positive_int("task.extra_steps", task.get("extra_steps", 1))
        self.train_T = _T_range("task.train_T", task.get("train_T", [5, 12]))
        self.test_T = _T_range("task.test_T", task.get("test_T", [1, 100]))
        self.envs = check_positive_int("task.envs", task.get("envs", 512))
        self.val_episodes = check_positive_int("task.val_episodes", task.get("val_episodes", 100))
        self.test_episodes = check_positive_int("task.test_episodes", task.get("test_episodes", 300))
        self.hidden = check_positive_int("task.hidden", task.get("hidden", 64))
        self.nac_outputs = check_positive_int("task.nac_outputs", task.get("nac_outputs", 8))
        self.clock_init = task.get("clock_init", "exact")
        check_choice("task.clock_init", self.clock_init, CLOCK_INITS)
        #: A2C's values (``a2c.py``), checked
        self.a2c = {k: check_number(f"task.{k}", task.get(k, v), 0) for k, v in A2C_DEFAULTS.items()}
        for key in ("gamma", "gae_lambda"):
            if self.a2c[key] > 1:
                raise ConfigError(f"task.{key}={self.a2c[key]:g} must be in [0, 1]")
        self.greedy_eval = task.get("greedy_eval", True)
        if not isinstance(self.greedy_eval, bool):
            raise ConfigError(f"task.greedy_eval={self.greedy_eval!r} must be true or false")
        #: {T: success} of the last test, for the figure
        self.test_success: dict[int, float] = {}

    # --- pieces the system uses ------------------------------------------------------------------
    def build_model(self) -> GridAgent:
        return build_agent(self.agent_name, self.image_size, self.hidden, self.nac_outputs, self.clock_init)

    def build_env(self):
        from nalu_suite.envs.batched import BatchedTimedGridWorld

        return BatchedTimedGridWorld(self.grid_size, self.image_size, self.extra_steps)

    def build_datamodule(self, data_dir: str | Path, batch_size: int):
        """Placeholder batches: the data are the environment's episodes, drawn inside the steps."""
        from nalu_suite.tasks.gridworld.system import StepsDataModule

        return StepsDataModule()

    def system_class(self):
        """The LightningModule of this task (``train.py`` uses it instead of ``ArithmeticSystem``)."""
        from nalu_suite.tasks.gridworld.system import GridWorldSystem

        return GridWorldSystem

    def test_metrics(self, success: dict[int, float]) -> dict[str, float]:
        """``test/T{k}/success``, ``test/T{k}/reward`` and the interp/extrap means of ``{T: success}``."""
        self.test_success = dict(success)
        out: dict[str, float] = {}
        for k, value in success.items():
            out[f"test/T{k}/success"] = value
            out[f"test/T{k}/reward"] = value  # the reward is 1 exactly on success
        interp = [v for k, v in success.items() if k in self.train_T]
        extrap = [v for k, v in success.items() if k > max(self.train_T)]
        if interp:
            out["test/interp/success"] = sum(interp) / len(interp)
        if extrap:
            out["test/extrap/success"] = sum(extrap) / len(extrap)
            out["test/extrap/worst_success"] = min(extrap)
        return out

    def preview(self, n: int) -> list[dict[str, Any]]:
        import torch

        env = self.build_env()
        env.reset(torch.tensor(self.train_T).repeat(n)[:n], torch.Generator().manual_seed(self.seed))
        return [
            {
                "inputs": {"agent": env.agent[i].tolist(), "target": env.target[i].tolist()},
                "target": int(env.T[i]),
            }
            for i in range(n)
        ]

    # --- artefacts -------------------------------------------------------------------------------
    def make_figures(self, model, run_dir: Path) -> list[Path]:
        if not self.test_success:
            return []
        from nalu_suite.tasks.gridworld.figure import LABELS, plot_success

        path = Path(run_dir) / "gridworld_success.png"
        plot_success({LABELS[self.agent_name]: self.test_success}, self.train_T, path)
        return [path]
