"""Neural Addition Unit, NAU (Madsen & Johansen, "Neural Arithmetic Units", ICLR 2020, Sec. 2.3).

    y = W x,   W in [-1, 1]

* ``W`` is clamped to ``[-1, 1]`` by ``project_()`` after every optimiser step (the paper's clipping) and
  also inside ``forward``/``effective_weights`` so the unit never computes with an out-of-box weight even if
  ``project_`` was skipped. Inside the box the clamp has unit gradient, so it changes nothing in training.
* Init ``W ~ U[-r, r]`` with ``r = min(0.5, sqrt(3) * sqrt(2 / (in + out)))`` (Glorot variance, capped at
  0.5 so the initial weights stay away from the discrete values +-1; the value used by the authors'
  stable-nalu code).
* ``regularizer()`` is the paper's sparsity regulariser ``R_sparse = mean_ij min(|W_ij|, 1 - |W_ij|)``
  (computed as ``|1 - |W||`` so it stays non-negative); its scaling schedule (lambda warm-up) is the
  trainer's job.

No epsilons: the NAU is an exact linear map.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._numerics import clamp_, linear
from .base import ArithmeticUnit


class NAU(ArithmeticUnit):
    """NAU: ``y = W x`` with ``W`` kept in ``[-1, 1]``, sparsity-regularised towards {-1, 0, 1}."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features)
        self.W = nn.Parameter(torch.empty(out_features, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = math.sqrt(2.0 / (self.in_features + self.out_features))
        r = min(0.5, math.sqrt(3.0) * std)
        nn.init.uniform_(self.W, -r, r)

    @property
    def weight(self) -> torch.Tensor:
        return torch.clamp(self.W, -1.0, 1.0)

    def effective_weights(self) -> dict[str, torch.Tensor]:
        return {"W": self.weight}

    def regularizer(self) -> torch.Tensor:
        w = self.weight.abs()
        return torch.minimum(w, (1 - w).abs()).mean()

    @torch.no_grad()
    def project_(self) -> None:
        clamp_(self.W, -1.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight)
