"""The grid-world agents (Trask et al. 2018, §4.5): one step ``(image, T, state) -> (logits, value, state)``.

All agents see the image through the same convolutional encoder and get the instruction ``T`` as a number.

* ``lstm`` (the paper's A3C agent): ``[conv(image), T]`` -> LSTM -> policy logits (5) and value.
* ``nac`` (the paper's NAC agent): as ``lstm``, and ``T`` together with the previous LSTM output passes
  through a NAC whose output goes back into the LSTM as extra inputs.
* ``nau`` (this project's default, the *clock* agent): no LSTM. A counter adds 1 per step (elapsed time
  ``t``, exact by construction); an NAU reads ``[T, t]`` and gives ``r = w_T T + w_t t`` with weights kept in
  [-1, 1] and regularised towards {-1, 0, 1}. ``clock_init=exact`` (default) starts it at ``w = [1, -1]``,
  ``r = T - t``, the time left, and the regulariser holds it there; ``zero``/``uniform`` leave it to be
  learned by RL (in our runs 2 of 4 seeds never found it: docs/gridworld.md). The wait-or-move decision is
  linear in ``r``: the *pass* logit gets ``gain * r`` (``gain = 1 + softplus(.) >= 1``, so that the NAU's
  weights, not the gain, carry the time dependence), all other logit terms read the image only (the value
  also reads ``r``). For a fixed image the policy is monotone in the time left, so what the agent learns
  for ``T <= 12`` holds for ``T = 100``.

``T`` enters the ``lstm``/``nac`` agents unscaled, as in the paper.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from nalu_suite.tasks.base import ArithmeticModel
from nalu_suite.units import NAU, build_unit

AGENTS = ("lstm", "nac", "nau")
#: the clock NAU's initial weights: exact ([1, -1], i.e. T - t), zero, uniform (the NAU's own init)
CLOCK_INITS = ("exact", "zero", "uniform")
N_ACTIONS = 5
PASS = 0

State = tuple[torch.Tensor, ...]


class ConvEncoder(nn.Module):
    """uint8 images (N, H, W, 3) -> features (N, features). One 3x3 convolution at one pixel per cell;
    for larger images (the paper's 56 x 56) an Atari-style stack (8x8 stride 4, 4x4 stride 2) first."""

    def __init__(self, image_size: int, features: int = 64, channels: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size, inputs = image_size, 3
        if image_size > 12:
            layers += [
                nn.Conv2d(3, channels, 8, stride=4),
                nn.ReLU(),
                nn.Conv2d(channels, channels, 4, stride=2),
            ]
            layers += [nn.ReLU()]
            size, inputs = ((image_size - 8) // 4 + 1 - 4) // 2 + 1, channels
        layers += [nn.Conv2d(inputs, channels, 3, padding=1), nn.ReLU(), nn.Flatten()]
        layers += [nn.Linear(channels * size * size, features), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image.permute(0, 3, 1, 2).float() / 255.0)


class GridAgent(ArithmeticModel):
    """Base of the agents: ``initial_state(n)`` and ``forward(image, T, state) -> (logits, value, state)``."""

    def initial_state(self, n: int) -> State:
        raise NotImplementedError


class LSTMAgent(GridAgent):
    """The paper's agent: conv encoder, ``T`` concatenated, LSTM core; with ``nac=True`` the NAC agent."""

    def __init__(self, image_size: int, hidden: int = 64, nac_outputs: int = 0) -> None:
        super().__init__()
        self.encoder = ConvEncoder(image_size)
        self.hidden = hidden
        self.nac = build_unit("nac", 1 + hidden, nac_outputs) if nac_outputs else None
        self.core = nn.LSTMCell(64 + 1 + nac_outputs, hidden)
        self.policy = nn.Linear(hidden, N_ACTIONS)
        self.value = nn.Linear(hidden, 1)

    def initial_state(self, n: int) -> State:
        return torch.zeros(n, self.hidden), torch.zeros(n, self.hidden)

    def forward(self, image, T, state):
        h, c = state
        T = T.float().reshape(-1, 1)
        x = [self.encoder(image), T]
        if self.nac is not None:
            x.append(self.nac(torch.cat([T, h], 1)))
        h, c = self.core(torch.cat(x, 1), (h, c))
        return self.policy(h), self.value(h).squeeze(1), (h, c)


class ClockAgent(GridAgent):
    """The default agent: an exact step counter, an NAU for the time left, a linear wait-or-move gate."""

    def __init__(self, image_size: int, hidden: int = 64, clock_init: str = "exact") -> None:
        super().__init__()
        self.encoder = ConvEncoder(image_size)
        self.time_left = NAU(2, 1)  # r = w_T T + w_t t (T - t: w = [1, -1])
        with torch.no_grad():
            if clock_init in CLOCK_INITS[:2]:
                self.time_left.W.copy_(torch.tensor([[1.0, -1.0]]) if clock_init == "exact" else 0.0)
        self.gain_raw = nn.Parameter(torch.tensor(0.0))  # gain = 1 + softplus(gain_raw) >= 1
        self.head = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, N_ACTIONS))
        self.value = nn.Sequential(nn.Linear(64 + 1, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def initial_state(self, n: int) -> State:
        return (torch.zeros(n, 1),)

    def forward(self, image, T, state):
        (elapsed,) = state
        elapsed = elapsed + 1  # the step this action leads to is t + 1
        r = self.time_left(torch.cat([T.float().reshape(-1, 1), elapsed], 1))  # (N, 1)
        z = self.encoder(image)
        logits = self.head(z) + F.one_hot(torch.tensor(PASS), N_ACTIONS) * (1 + F.softplus(self.gain_raw)) * r
        value = self.value(torch.cat([z, r], 1)).squeeze(1)
        return logits, value, (elapsed,)


def build_agent(
    name: str, image_size: int, hidden: int, nac_outputs: int, clock_init: str = "exact"
) -> GridAgent:
    """The agent ``unit.name`` selects (``AGENTS``)."""
    if name == "lstm":
        return LSTMAgent(image_size, hidden)
    if name == "nac":
        return LSTMAgent(image_size, hidden, nac_outputs)
    return ClockAgent(image_size, hidden, clock_init)
