"""Neural Arithmetic Logic Unit (Trask et al., "Neural Arithmetic Logic Units", NeurIPS 2018, eq. 2).

    a = W x,   m = exp(W log(|x| + eps)),   g = sigmoid(G x),   y = g * a + (1 - g) * m

with the NAC weight ``W = tanh(W_hat) * sigmoid(M_hat)`` **shared** by both paths, as in the paper, and an
input-dependent gate without bias.

Options (defaults reproduce the paper):

* ``shared_weights=True``; ``False`` gives the multiplicative path its own ``W_hat_mul, M_hat_mul``
  (the "two NACs" variant studied by Madsen & Johansen 2020).
* ``gate="input"`` (``g = sigmoid(G x)``, ``G`` Glorot-uniform) or ``"scalar"`` (one learned logit per
  output, ``g = sigmoid(gate_logit)``, independent of the input, as in iNALU; initialised at 0, g = 0.5).
* ``eps=1e-7`` inside the log (the paper's epsilon).
* ``max_exponent=30``: the log-space sum of the multiplicative path is clamped to ``<= 30`` before ``exp``
  (project addition, see ``_numerics.MAX_EXPONENT``); the paper has no clamp and overflows to inf.

``W_hat, M_hat ~ U[-r, r]`` with the NAC variance-matching ``r`` (see ``nac.py``).
``regularizer()`` is 0 (the paper uses none); ``sparsity_error()`` covers ``W`` (or ``W_add, W_mul``).
"""

from __future__ import annotations

import torch
from torch import nn

from ._numerics import MAX_EXPONENT, bounded_exp, fused_linear, nac_init_range, nac_weight
from .base import ArithmeticUnit

GATES = ("input", "scalar")


class NALU(ArithmeticUnit):
    """NALU: ``g * (W x) + (1 - g) * exp(W log(|x| + eps))``, ``g = sigmoid(G x)`` or a per-output logit."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        shared_weights: bool = True,
        gate: str = "input",
        eps: float = 1e-7,
        max_exponent: float = MAX_EXPONENT,
    ) -> None:
        super().__init__(in_features, out_features)
        if gate not in GATES:
            raise ValueError(f"NALU: unknown gate {gate!r}; valid gates: {list(GATES)}")
        self.shared_weights = shared_weights
        self.gate = gate
        self.eps = eps
        self.max_exponent = max_exponent
        self.W_hat = nn.Parameter(torch.empty(out_features, in_features))
        self.M_hat = nn.Parameter(torch.empty(out_features, in_features))
        if shared_weights:
            self.register_parameter("W_hat_mul", None)
            self.register_parameter("M_hat_mul", None)
        else:
            self.W_hat_mul = nn.Parameter(torch.empty(out_features, in_features))
            self.M_hat_mul = nn.Parameter(torch.empty(out_features, in_features))
        if gate == "input":
            self.G = nn.Parameter(torch.empty(out_features, in_features))
            self.register_parameter("gate_logit", None)
        else:
            self.register_parameter("G", None)
            self.gate_logit = nn.Parameter(torch.empty(out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r = nac_init_range(self.in_features, self.out_features)
        for p in (self.W_hat, self.M_hat, self.W_hat_mul, self.M_hat_mul):
            if p is not None:
                nn.init.uniform_(p, -r, r)
        if self.G is not None:
            nn.init.xavier_uniform_(self.G)
        if self.gate_logit is not None:
            nn.init.zeros_(self.gate_logit)

    @property
    def weight_add(self) -> torch.Tensor:
        return nac_weight(self.W_hat, self.M_hat)

    @property
    def weight_mul(self) -> torch.Tensor:
        if self.shared_weights:
            return self.weight_add
        return nac_weight(self.W_hat_mul, self.M_hat_mul)

    def gate_value(self, x: torch.Tensor) -> torch.Tensor:
        """The gate ``g`` (1 = additive path), shape ``(..., out)`` or ``(out,)`` for the scalar gate."""
        if self.gate == "input":
            return torch.sigmoid(fused_linear(x, self.G))
        return torch.sigmoid(self.gate_logit)

    def effective_weights(self) -> dict[str, torch.Tensor]:
        if self.shared_weights:
            return {"W": self.weight_add}
        return {"W_add": self.weight_add, "W_mul": self.weight_mul}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_add = self.weight_add
        w_mul = w_add if self.shared_weights else self.weight_mul
        a = fused_linear(x, w_add)
        m = bounded_exp(fused_linear(torch.log(x.abs() + self.eps), w_mul), self.max_exponent)
        g = self.gate_value(x)
        return g * a + (1 - g) * m

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, shared_weights={self.shared_weights}, gate={self.gate}, "
            f"eps={self.eps}, max_exponent={self.max_exponent}"
        )
