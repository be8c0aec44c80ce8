"""Improved NALU, iNALU (Schlör, Ring & Hotho, "iNALU: Improved Neural Arithmetic Logic Unit",
Frontiers in Artificial Intelligence 2020, Sec. 3).

    W_a = tanh(W_hat_a) * sigmoid(M_hat_a),   W_m = tanh(W_hat_m) * sigmoid(M_hat_m)   (independent weights)
    a   = W_a x
    m   = exp(min(W_m log(max(|x|, eps)), omega))                                      (input/output clipping)
    s_j = prod_i (|W_m,ij| * sign(x_i) + 1 - |W_m,ij|)                                 (sign retrieval)
    g   = sigmoid(g_hat)                                         (one input-independent gate per output)
    y   = g * a + (1 - g) * m * s

Clamps / epsilons (all from the paper): ``eps = 1e-7`` as the lower clip of ``|x|`` (so the log gradient is
exactly 0 for ``|x| < eps``) and ``omega = 20`` as the upper clip of the exponent (``m <= e**20 ~ 4.85e8``).
The sign factors lie in ``[-1, 1]`` so their product cannot overflow; ``sign(0) = 0``, which makes a
product with a zero input exactly 0 when the weight is exactly 1.

Initialisation (iNALU's recommended setting, from the authors' reference implementation):
``W_hat ~ N(0.88, 0.2)``, ``M_hat ~ N(0.5, 0.2)``, ``g_hat ~ N(0, 0.2)`` (standard deviations 0.2), for
both paths.

Regularizer (paper, Sec. 3.4): ``mean(max(min(-w, w) + t, 0) / t) = mean(max(t - |w|, 0)) / t`` with
``t = 20`` over all entries of ``W_hat_a, M_hat_a, W_hat_m, M_hat_m`` (the gate logit is not included).
It penalises raw weights near 0 and is 0 once every ``|w| >= t``, pushing ``tanh``/``sigmoid`` to saturate
at discrete values. The paper switches it on only late in training; that schedule (and iNALU's
re-initialisation of stuck models) is the trainer's job.
"""

from __future__ import annotations

import torch
from torch import nn

from ._numerics import linear, nac_weight
from .base import ArithmeticUnit


class INALU(ArithmeticUnit):
    """iNALU with separate add/mul weights, clipped log/exp, sign retrieval and a scalar gate per output."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        eps: float = 1e-7,
        omega: float = 20.0,
        reg_threshold: float = 20.0,
    ) -> None:
        super().__init__(in_features, out_features)
        self.eps = eps
        self.omega = omega
        self.reg_threshold = reg_threshold
        shape = (out_features, in_features)
        self.W_hat_add = nn.Parameter(torch.empty(shape))
        self.M_hat_add = nn.Parameter(torch.empty(shape))
        self.W_hat_mul = nn.Parameter(torch.empty(shape))
        self.M_hat_mul = nn.Parameter(torch.empty(shape))
        self.gate_logit = nn.Parameter(torch.empty(out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.W_hat_add, mean=0.88, std=0.2)
        nn.init.normal_(self.W_hat_mul, mean=0.88, std=0.2)
        nn.init.normal_(self.M_hat_add, mean=0.5, std=0.2)
        nn.init.normal_(self.M_hat_mul, mean=0.5, std=0.2)
        nn.init.normal_(self.gate_logit, mean=0.0, std=0.2)

    @property
    def weight_add(self) -> torch.Tensor:
        return nac_weight(self.W_hat_add, self.M_hat_add)

    @property
    def weight_mul(self) -> torch.Tensor:
        return nac_weight(self.W_hat_mul, self.M_hat_mul)

    def effective_weights(self) -> dict[str, torch.Tensor]:
        return {"W_add": self.weight_add, "W_mul": self.weight_mul}

    def regularizer(self) -> torch.Tensor:
        t = self.reg_threshold
        raw = torch.cat(
            [p.flatten() for p in (self.W_hat_add, self.M_hat_add, self.W_hat_mul, self.M_hat_mul)]
        )
        return (torch.clamp(torch.minimum(-raw, raw) + t, min=0) / t).mean()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_add = self.weight_add
        w_mul = self.weight_mul
        a = linear(x, w_add)
        log_x = torch.log(torch.clamp(x.abs(), min=self.eps))
        m = torch.exp(torch.clamp(linear(log_x, w_mul), max=self.omega))
        abs_w = w_mul.abs()
        # (..., 1, in) against (out, in): one factor per (output, input) pair; values in [-1, 1]
        sign_factors = abs_w * torch.sign(x).unsqueeze(-2) + 1 - abs_w
        s = torch.prod(sign_factors, dim=-1)
        g = torch.sigmoid(self.gate_logit)
        return g * a + (1 - g) * m * s

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, eps={self.eps}, omega={self.omega}, reg_threshold={self.reg_threshold}"
        )
