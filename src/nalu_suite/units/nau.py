"""Neural Addition Unit, NAU (Madsen & Johansen, "Neural Arithmetic Units", ICLR 2020, Sec. 2.3).

    y = W x,   W in [-1, 1]

* ``W`` is clamped to ``[-1, 1]`` by ``project_()`` after every optimiser step (the paper's clipping) and
  also inside ``forward``/``effective_weights`` so the unit never computes with an out-of-box weight even if
  ``project_`` was skipped. Inside the box the clamp has unit gradient; on a bound itself torch's clamp
  gives none, and ``grad_at_bounds=True`` keeps it (the authors' code does, ``_numerics.box``).
* Init ``W ~ U[-r, r]`` with ``r = min(0.5, sqrt(3) * sqrt(2 / (in + out)))`` (Glorot variance, capped at
  0.5 so the initial weights stay away from the discrete values +-1; the value used by the authors'
  stable-nalu code).
* ``init="split"`` (an option of this project, not the paper's): after that draw, row 0 becomes ``+-r`` with
  random signs and the other rows 0, so every input starts with a different weight in every pair of
  units. With the output weights in a fixed ratio, Adam steps two units' weights on an input alike, so
  their difference stays what the init made it; ``U[-r, r]`` leaves some inputs with almost none, and
  the sparsity regulariser then stalls both units near 0.5 there. With the split init the static
  task's ``add`` ends exact *and* sparse (sparsity error 6e-9) in 100 of 100 seeds
  (docs/static_arith.md).
* ``regularizer()`` is the paper's sparsity regulariser ``R_sparse = mean_ij min(|W_ij|, 1 - |W_ij|)``
  (computed as ``|1 - |W||`` so it stays non-negative); its scaling schedule (lambda warm-up) is the
  trainer's job.

No epsilons: the NAU is an exact linear map.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._numerics import box, clamp_, linear
from .base import ArithmeticUnit


class NAU(ArithmeticUnit):
    """NAU: ``y = W x`` with ``W`` kept in ``[-1, 1]``, sparsity-regularised towards {-1, 0, 1}."""

    INITS = ("uniform", "split")

    def __init__(
        self, in_features: int, out_features: int, init: str = "uniform", grad_at_bounds: bool = False
    ) -> None:
        super().__init__(in_features, out_features)
        self.grad_at_bounds = bool(grad_at_bounds)
        if init not in self.INITS:
            raise ValueError(f"NAU init={init!r} is not valid; choose one of: {', '.join(self.INITS)}")
        if init == "split" and out_features < 2:
            raise ValueError(f"NAU init='split' needs at least 2 outputs (has {out_features})")
        self.init = init
        self.W = nn.Parameter(torch.empty(out_features, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = math.sqrt(2.0 / (self.in_features + self.out_features))
        r = min(0.5, math.sqrt(3.0) * std)
        nn.init.uniform_(self.W, -r, r)
        if self.init == "split":  # row 0: +-r with random signs; the other rows: 0 (module docstring)
            with torch.no_grad():
                sign = torch.randint(0, 2, (self.in_features,)).float() * 2 - 1
                self.W.zero_()
                self.W[0] = r * sign

    @property
    def weight(self) -> torch.Tensor:
        return box(self.W, -1.0, 1.0, self.grad_at_bounds)

    def effective_weights(self) -> dict[str, torch.Tensor]:
        return {"W": self.weight}

    def regularizer(self) -> torch.Tensor:
        w = self.weight.abs()
        return torch.minimum(w, (1 - w).abs()).mean()

    @torch.no_grad()
    def project_(self) -> None:
        clamp_(self.W, -1.0, 1.0)

    def extra_repr(self) -> str:
        init = f", init={self.init}" if self.init != "uniform" else ""
        bounds = ", grad_at_bounds=True" if self.grad_at_bounds else ""
        return f"{super().extra_repr()}{init}{bounds}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight)
