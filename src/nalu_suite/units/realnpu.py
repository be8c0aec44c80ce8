"""Real Neural Power Unit, RealNPU (Heim, Pevný & Šmídl, "Neural Power Units", NeurIPS 2020, Sec. 3).

The NPU with the imaginary weight fixed at 0:

    g_hat = clamp(g, 0, 1),   r = g_hat * (|x| + eps) + (1 - g_hat),   k = pi * g_hat * [x < 0]
    y     = exp(W_r log r) * cos(W_r k)

The cosine still recovers the sign of products/quotients of negative inputs (``cos(pi * n) = (-1) ** n``).
Clamps, epsilon and initialisation as in ``npu.py``: ``eps = float32 machine epsilon``, ``g`` clamped to
``[0, 1]`` in ``forward`` and ``project_()``, exponent clamped to ``<= max_exponent = 30`` (project
addition), ``W_r`` Glorot-uniform, ``g = 0.5``. ``regularizer()`` is ``mean(|W_r|)`` (L1).
"""

from __future__ import annotations

import torch

from ._numerics import bounded_exp, fused_linear
from .npu import _NPUBase


class RealNPU(_NPUBase):
    """RealNPU: ``exp(W_r log r) * cos(W_r k)``; parameters ``W_real`` and ``gate``."""

    has_imaginary = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_r, k = self._log_r_and_k(x)
        magnitude = bounded_exp(fused_linear(log_r, self.W_real), self.max_exponent)
        return magnitude if k is None else magnitude * torch.cos(fused_linear(k, self.W_real))
