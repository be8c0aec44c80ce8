"""Modified Real NPU (Mistry, Li, Zhang & Hare, "Learning Division with Neural Arithmetic Logic Modules",
arXiv 2110.05177, 2021; TMLR version "Exploring the Learning Mechanisms of Neural Division Modules", 2022).

The RealNPU of Heim et al. 2020 (``realnpu.py``), unchanged in its forward pass,

    g_hat = clamp(g, 0, 1),   r = g_hat * (|x| + eps) + (1 - g_hat),   k = pi * g_hat * [x < 0]
    y     = exp(W log r) * cos(W k),                                W = clamp(W_real, -1, 1)

with the three changes the Division paper makes to it (its "WG_clip ... WrI_xuc" configuration in the
authors' code, ``bmistry4/nalm-division``, ``npu_real.py`` with ``--npu-clip wg``):

* clipping: ``W_real`` to ``[-1, 1]`` and ``g`` to ``[0, 1]`` (``project_()`` after every optimiser step, and
  inside ``forward``; ``grad_at_bounds=True`` keeps the gradient of a weight on a bound, as the authors'
  code does: ``_numerics.box``);
* discretisation regularisers, each of weight 1 (``regularizer()``):

      R = mean_i min(|g_i|, |1 - g_i|)  +  mean_ij |1 - |W_ij||

  The weight term pushes every ``W`` to +-1 (not to 0): an input is switched off by its gate ``g = 0``.
  The paper ramps both in over 40k -> 50k steps (2 inputs) or 50k -> 75k (10 inputs); the ramp is the
  trainer's job.
* NAU-style initialisation of ``W_real``: ``U[-r, r]``, ``r = min(0.5, sqrt(3) * sqrt(2 / (in + out)))``
  (the code's "xavier-uniform-constrained"); ``g = 0.5`` as in the RealNPU.

The paper keeps the RealNPU's L1 penalty on all parameters as well, with its own schedule (``beta`` from
1e-9, x10 every 10k steps, up to 1e-7), which the trainer's single regulariser weight cannot express next to
the discretisation terms. ``l1`` (default 0) adds ``l1 * mean(|W| ++ |g|)`` to ``regularizer()`` under the
same ramp; at the paper's ``beta <= 1e-7`` against a discretisation weight of 1 it is negligible.

``sparsity_error()`` covers ``W`` and the gate (both are meant to end discrete). ``eps`` (float32 machine
epsilon), ``max_exponent`` and the ``gated``/``signed`` options are the RealNPU's (``npu.py``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._numerics import MAX_EXPONENT, bounded_exp, box, clamp_, linear
from .npu import NPU_EPS
from .realnpu import RealNPU


class ModifiedRealNPU(RealNPU):
    """RealNPU with ``W`` clipped to [-1, 1], discretisation regularisers and NAU-style initialisation."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        eps: float = NPU_EPS,
        max_exponent: float = MAX_EXPONENT,
        gated: bool = True,
        signed: bool = True,
        l1: float = 0.0,
        grad_at_bounds: bool = False,
    ) -> None:
        if not float(l1) >= 0:
            raise ValueError(f"realnpu_mod l1={l1!r} must be >= 0")
        self.l1 = float(l1)
        self.grad_at_bounds = bool(grad_at_bounds)
        super().__init__(
            in_features, out_features, eps=eps, max_exponent=max_exponent, gated=gated, signed=signed
        )

    def reset_parameters(self) -> None:
        r = min(0.5, math.sqrt(3.0) * math.sqrt(2.0 / (self.in_features + self.out_features)))
        nn.init.uniform_(self.W_real, -r, r)
        if self.gate is not None:
            nn.init.constant_(self.gate, 0.5)

    @property
    def weight(self) -> torch.Tensor:
        return box(self.W_real, -1.0, 1.0, self.grad_at_bounds)

    def gate_value(self) -> torch.Tensor | None:
        return None if self.gate is None else box(self.gate, 0.0, 1.0, self.grad_at_bounds)

    def effective_weights(self) -> dict[str, torch.Tensor]:
        weights = {"W_real": self.weight}
        if self.gate is not None:
            weights["gate"] = self.gate_value()
        return weights

    def regularizer(self) -> torch.Tensor:
        w = self.weight
        reg = (1 - w.abs()).abs().mean()
        g = self.gate_value()
        if g is not None:
            reg = reg + torch.minimum(g.abs(), (1 - g).abs()).mean()
        if self.l1:
            weights = torch.cat([p.abs().flatten() for p in self.effective_weights().values()])
            reg = reg + self.l1 * weights.mean()
        return reg

    @torch.no_grad()
    def project_(self) -> None:
        clamp_(self.W_real, -1.0, 1.0)
        super().project_()  # the gate to [0, 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        log_r, k = self._log_r_and_k(x)
        magnitude = bounded_exp(linear(log_r, w), self.max_exponent)
        return magnitude if k is None else magnitude * torch.cos(linear(k, w))

    def extra_repr(self) -> str:
        bounds = ", grad_at_bounds=True" if self.grad_at_bounds else ""
        return f"{super().extra_repr()}, l1={self.l1}{bounds}"
