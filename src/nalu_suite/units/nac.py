"""Neural accumulators NAC+ and NAC• (Trask et al., "Neural Arithmetic Logic Units", NeurIPS 2018).

* ``NACAdd`` (NAC+, eq. 1): ``y = W x`` with ``W = tanh(W_hat) * sigmoid(M_hat)``, no bias.
* ``NACMul`` (NAC•, the multiplicative path of eq. 2): ``y = exp(W log(|x| + eps))``, same ``W``.

Initialisation: ``W_hat, M_hat ~ U[-r, r]`` with ``r`` chosen so that ``Var[W] = 2 / (fan_in + fan_out)``
(Glorot's variance for the *effective* weight, the criterion of Madsen & Johansen's stable-nalu), solved by
bisection on the closed-form variance, target capped at 0.4 because ``Var[W] < 1/2`` for every r
(see :func:`nalu_suite.units._numerics.nac_init_range`).

Clamps / epsilons:

* NAC•: ``eps = 1e-7`` inside the log (the paper's ``epsilon`` "prevents log 0"); the derivative of
  ``log(|x| + eps)`` is at most ``1/eps`` and is exactly 0 at ``x = 0`` (``d|x|/dx = sign(0) = 0``).
* NAC•: the log-space sum is clamped to ``<= max_exponent = 30`` before ``exp`` (project addition, see
  ``_numerics.MAX_EXPONENT``), so ``|y| <= 1.07e13``.
* NAC• output is always positive: it cannot represent the sign of a product (a known NALU limitation).
"""

from __future__ import annotations

import torch
from torch import nn

from ._numerics import MAX_EXPONENT, bounded_exp, linear, nac_init_range, nac_weight
from .base import ArithmeticUnit


class _NACBase(ArithmeticUnit):
    """Holds ``W_hat, M_hat`` and the effective weight ``W = tanh(W_hat) * sigmoid(M_hat)``."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(in_features, out_features)
        self.W_hat = nn.Parameter(torch.empty(out_features, in_features))
        self.M_hat = nn.Parameter(torch.empty(out_features, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r = nac_init_range(self.in_features, self.out_features)
        nn.init.uniform_(self.W_hat, -r, r)
        nn.init.uniform_(self.M_hat, -r, r)

    @property
    def weight(self) -> torch.Tensor:
        return nac_weight(self.W_hat, self.M_hat)

    def effective_weights(self) -> dict[str, torch.Tensor]:
        return {"W": self.weight}


class NACAdd(_NACBase):
    """NAC+: ``y = W x``, ``W = tanh(W_hat) * sigmoid(M_hat)`` (Trask et al. 2018, eq. 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight)


class NACMul(_NACBase):
    """NAC•: ``y = exp(W log(|x| + eps))`` with the NAC weight; log-space sum clamped at ``max_exponent``."""

    def __init__(
        self, in_features: int, out_features: int, eps: float = 1e-7, max_exponent: float = MAX_EXPONENT
    ) -> None:
        super().__init__(in_features, out_features)
        self.eps = eps
        self.max_exponent = max_exponent

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_x = torch.log(x.abs() + self.eps)
        return bounded_exp(linear(log_x, self.weight), self.max_exponent)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, eps={self.eps}, max_exponent={self.max_exponent}"
