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

from ._numerics import fused_linear, linear, nac_weight, parity_sign
from .base import ArithmeticUnit


def sign_retrieval(x: torch.Tensor, w_mul: torch.Tensor) -> torch.Tensor:
    """iNALU's sign ``s_j = prod_i (|W_ji| sign(x_i) + 1 - |W_ji|)`` (Sec. 3.3), shape ``(..., out)``.

    A factor is ``1`` where ``x_i > 0``, ``1 - |W_ji|`` where ``x_i = 0`` and ``1 - 2|W_ji|`` where
    ``x_i < 0``, so the product is computed from the zero and negative inputs only, in log space:
    ``log|s| = [x = 0] @ log(1 - |W|)^T + [x < 0] @ log|1 - 2|W||^T``, one matrix product that also
    counts the negative factors (the sign is their parity) and the exactly-zero ones (then ``s = 0``).
    This avoids the ``(batch, out, in)`` tensor of factors and the backward of its product: under
    ``replicas=100`` with (128 x 100) batches, forward and backward take about 6.5 ms instead of 14 ms
    (an ad-hoc timing, 2026-12-01).
    ``s = 1`` exactly when every input is positive. The value matches the direct product to rounding;
    the one difference is the gradient at an exactly-zero factor (``|W_ji| = 1`` with ``x_i = 0``, or
    ``|W_ji| = 1/2`` with ``x_i < 0``), which is 0 here. ``|W| = 1`` only happens at saturated
    ``tanh``/``sigmoid``, whose own derivative is already 0 there.
    """
    abs_w = w_mul.abs()
    # the factor of an input that is exactly 0, then of a negative one: (out, 2 in); never < 0 for 0 inputs
    factors = torch.cat([1 - abs_w, 1 - 2 * abs_w], dim=-1)
    exact_zero = factors == 0
    # log|f| with the exact zeros replaced by log 1 = 0 (the where() inside the log: no 0 * inf backward)
    log_abs = torch.log(torch.where(exact_zero, torch.ones_like(factors), factors).abs())
    if torch.compiler.is_compiling():
        log_abs_s, n_negative, n_exact_zero = _selected_sums(x, log_abs, factors < 0, exact_zero)
    else:
        # (3 out, 2 in): each factor's log|f|, whether it is negative, whether it is exactly zero
        table = torch.cat([log_abs, (factors < 0).to(x.dtype), exact_zero.to(x.dtype)], dim=-2)
        which = torch.cat([(x == 0).to(x.dtype), (x < 0).to(x.dtype)], dim=-1)  # (..., 2 in), 0 or 1
        # one product gives log|s|, the number of negative factors and the number of zero factors
        log_abs_s, n_negative, n_exact_zero = linear(which, table).split(w_mul.shape[-2], dim=-1)
    sign = parity_sign(n_negative, log_abs_s.dtype)
    return torch.where(n_exact_zero > 0, torch.zeros_like(log_abs_s), sign * torch.exp(log_abs_s))


def _selected_sums(x, log_abs, negative_factor, zero_factor):
    """Under ``torch.compile``, :func:`sign_retrieval`'s three sums without its matrix product: each input
    selects its factor's ``log|f|`` (zero input: the first ``in`` columns of the ``(out, 2 in)`` tables;
    negative: the last ``in``; positive: none), summed per output. That is one pass over
    ``(..., out, in)`` where the product of the masks with the ``(3 out, 2 in)`` table is six times as
    many terms, and its backward only the log table's (BENCHMARKS.md, "Fused input products and
    iNALU's sign retrieval")."""
    n = x.shape[-1]
    zero, negative = (x == 0).unsqueeze(-2), (x < 0).unsqueeze(-2)  # (..., 1, in)
    log_zero, log_negative = log_abs[..., :n], log_abs[..., n:]
    selected = torch.where(zero, log_zero, torch.where(negative, log_negative, torch.zeros_like(log_zero)))
    # a zero input's factor 1 - |W| is never negative; the counts are whole numbers, as x's dtype
    n_negative = (negative & negative_factor[..., n:]).to(x.dtype).sum(-1)
    n_zero = ((zero & zero_factor[..., :n]) | (negative & zero_factor[..., n:])).to(x.dtype).sum(-1)
    return selected.sum(-1), n_negative, n_zero


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
        a = fused_linear(x, w_add)
        log_x = torch.log(torch.clamp(x.abs(), min=self.eps))
        m = torch.exp(torch.clamp(fused_linear(log_x, w_mul), max=self.omega))
        g = torch.sigmoid(self.gate_logit)
        if self.positive_inputs:  # every sign factor is 1, so s = 1 exactly and adds no gradient
            return g * a + (1 - g) * m
        return g * a + (1 - g) * m * sign_retrieval(x, w_mul)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, eps={self.eps}, omega={self.omega}, reg_threshold={self.reg_threshold}"
        )
