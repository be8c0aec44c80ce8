"""The identity-extrapolation failure of ordinary MLPs (Trask et al. 2018 §1.1, Figure 1).

Autoencoders of scalars, ``x -> 8 -> 8 -> 8 -> x`` (three hidden layers of width 8, differing only in
the nonlinearity), trained on ``U[-5, 5]`` and tested on ``[-20, 20]``: the error grows as soon as
``|x| > 5``. ``models_per_activation`` independent MLPs per activation are trained at once as one
batched ensemble (their losses are summed, so with Adam each trains as if alone) and the figure
averages them, as the paper averages 100 models per point.

Metrics: ``test/interp/<act>/mae`` (inside the training range) and ``test/extrap/<act>/mae`` (on
``|x| > 5`` up to 20); the figure ``identity_failure.png`` plots mean absolute error against ``x``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nalu_suite.errors import ConfigError, check_choice, check_range
from nalu_suite.figures import save_figure
from nalu_suite.rng import generator
from nalu_suite.tasks.base import ArithmeticModel, Task

ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": F.relu,
    "relu6": F.relu6,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "selu": F.selu,
    "tanh": torch.tanh,
    "hardtanh": F.hardtanh,
    "sigmoid": torch.sigmoid,
    "softsign": F.softsign,
    "softplus": F.softplus,
}


class EnsembleMLP(nn.Module):
    """Independent MLPs ``1 -> width x depth -> 1``, evaluated together as batched matmuls.

    ``activations[i]`` is the nonlinearity of member ``i``; members with the same activation are
    adjacent, so each layer is one ``baddbmm`` plus one activation call per distinct activation.
    """

    def __init__(self, activations: list[str], width: int = 8, depth: int = 3) -> None:
        super().__init__()
        self.groups: list[tuple[str, int, int]] = []  # (activation, first member, end)
        for i, name in enumerate(activations):
            if self.groups and self.groups[-1][0] == name and self.groups[-1][2] == i:
                self.groups[-1] = (name, self.groups[-1][1], i + 1)
            else:
                self.groups.append((name, i, i + 1))
        n = len(activations)
        sizes = [1] + [width] * depth + [1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            bound = 1 / math.sqrt(fan_in)  # torch.nn.Linear's default initialisation
            self.weights.append(nn.Parameter(torch.empty(n, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (batch,) -> predictions (members, batch)."""
        h = x.reshape(1, -1, 1).expand(self.weights[0].shape[0], -1, -1)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = torch.cat([ACTIVATIONS[name](h[lo:hi]) for name, lo, hi in self.groups])
        return h.squeeze(-1)


class IdentityModel(ArithmeticModel):
    """``models`` MLPs per activation; output (batch, activations, models)."""

    def __init__(self, activations: list[str], n: int, width: int, depth: int) -> None:
        super().__init__()
        self.shape = (len(activations), n)
        self.ensemble = EnsembleMLP([a for a in activations for _ in range(n)], width, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ensemble(x).T.reshape(-1, *self.shape)


class IdentityFailureTask(Task):
    name = "identity_failure"
    val_splits = ("val",)
    test_splits = ("test/interp", "test/extrap")
    monitor = "val/mae"

    def __init__(self, task: dict[str, Any], unit: dict[str, Any], seed: int) -> None:
        super().__init__(task, unit, seed)
        self.activations = list(task.get("activations") or [])
        if not self.activations:
            raise ConfigError(f"task.activations is empty; choose from: {', '.join(ACTIVATIONS)}")
        for a in self.activations:
            check_choice("task.activations entry", a, ACTIVATIONS)
        self.train_range = [float(v) for v in task["train_range"]]
        self.test_range = [float(v) for v in task["test_range"]]
        check_range("task.train_range", *self.train_range)
        check_range("task.test_range", *self.test_range)
        if not (self.test_range[0] <= self.train_range[0] and self.train_range[1] <= self.test_range[1]):
            raise ConfigError(
                f"task.test_range={self.test_range} must contain task.train_range={self.train_range}"
            )
        self.models = int(task.get("models_per_activation", 10))
        self.eval_size = int(task.get("eval_size", 2000))
        if self.models < 1:
            raise ConfigError(f"task.models_per_activation={self.models} must be >= 1")

    def build_model(self) -> IdentityModel:
        return IdentityModel(self.activations, self.models, int(self.cfg["width"]), int(self.cfg["depth"]))

    def sample(
        self, g: torch.Generator, n: int, low: float, high: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.empty(n).uniform_(low, high, generator=g)
        return x, x.clone()

    def fixed_set(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        g = generator(self.seed, "eval", split)
        if split == "test/extrap":  # |x| beyond the training range, up to the test range
            left, _ = self.sample(g, self.eval_size // 2, self.test_range[0], self.train_range[0])
            right, _ = self.sample(
                g, self.eval_size - self.eval_size // 2, self.train_range[1], self.test_range[1]
            )
            x = torch.cat([left, right])
            return x, x.clone()
        return self.sample(g, self.eval_size, *self.train_range)

    def build_datamodule(self, data_dir, batch_size: int):
        from nalu_suite.data import BatchStream, TensorDataModule

        return TensorDataModule(
            BatchStream(lambda g, n: self.sample(g, n, *self.train_range), batch_size, self.seed),
            val=[self.fixed_set(s) for s in self.val_splits],
            test=[self.fixed_set(s) for s in self.test_splits],
            batch_size=batch_size,
        )

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        x, target = batch
        pred = model(x)
        # summed over the independent models, so each gets the gradient it would get alone
        return (pred - target.reshape(-1, 1, 1)).pow(2).mean(dim=0).sum()

    def make_metric(self, split: str):
        from nalu_suite.metrics import PerGroupMAE

        return PerGroupMAE(self.activations)

    def preview(self, n: int) -> list[dict[str, Any]]:
        x, y = self.sample(generator(self.seed, "preview"), n, *self.train_range)
        return [
            {"text": f"reproduce {v:.4f}", "inputs": [v], "target": t}
            for v, t in zip(x.tolist(), y.tolist(), strict=True)
        ]

    def make_figures(self, model: nn.Module, run_dir: Path) -> list[Path]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        x = torch.linspace(self.test_range[0], self.test_range[1], 801)
        with torch.no_grad():
            err = (model(x) - x.reshape(-1, 1, 1)).abs().mean(dim=2)  # (points, activations)
        fig, ax = plt.subplots(figsize=(7, 4.5))
        colors = plt.get_cmap("tab20").colors
        for i, name in enumerate(self.activations):
            style = "-" if i < 10 else "--"
            ax.plot(
                x.numpy(), err[:, i].numpy(), style, color=colors[(2 * i) % 20], label=name, linewidth=1.2
            )
        ax.axvspan(*self.train_range, color="grey", alpha=0.15, label="training range")
        ax.set_yscale("log")
        ax.set_xlabel("input x")
        ax.set_ylabel(f"mean absolute error (mean of {self.models} models)")
        ax.set_title("MLPs fail to extrapolate the identity (Trask et al. 2018, Fig. 1)")
        ax.legend(fontsize=7, ncol=2)
        return [save_figure(fig, Path(run_dir) / "identity_failure.png")]
