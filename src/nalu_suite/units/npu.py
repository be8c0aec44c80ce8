"""Neural Power Unit, NPU (Heim, Pevný & Šmídl, "Neural Power Units", NeurIPS 2020, Sec. 3).

The NPU computes ``prod_i x_i ** W_ij`` for real (also negative) ``x`` via the complex logarithm
``log x = log|x| + i*pi*[x < 0]`` with a complex weight ``W = W_r + i W_i``, plus a relevance gate per input:

    g_hat = clamp(g, 0, 1)
    r     = g_hat * (|x| + eps) + (1 - g_hat)        (g_hat = 0 turns input i into the neutral factor 1)
    k     = pi * g_hat * [x < 0]
    y     = exp(W_r log r - W_i k) * cos(W_i log r + W_r k)

Clamps / epsilons:

* ``eps = torch.finfo(torch.float32).eps`` (~1.19e-7) inside ``|x| + eps``, as in the paper's implementation;
  ``r >= eps`` whenever ``g_hat = 1``, so the log and its gradient (``<= 1/eps``) are finite at ``x = 0``.
* ``g`` is clamped to ``[0, 1]`` in ``forward`` (the paper's ``min(max(g, 0), 1)``) and by ``project_()``.
* The exponent ``W_r log r - W_i k`` is clamped to ``<= max_exponent = 30`` before ``exp`` (project
  addition, see ``_numerics.MAX_EXPONENT``); the cosine needs no clamp.

Initialisation (paper): ``W_r`` Glorot-uniform, ``W_i = 0``, ``g = 0.5``.
``gated=False`` (project option) drops the gate: ``g_hat = 1`` for every input, so ``r = |x| + eps`` and
``y = prod_i |x_i| ** W_ij`` (times the sign's cosine). Without it, ``1 - g_hat`` adds an offset to
``|x|`` that lets ``(g |h| + 1 - g) ** w`` fit ``sqrt`` over a narrow range at a wrong scale of ``h``.

``signed=False`` (project option) drops the sign term (``k = 0``): ``y = prod_i r_i ** W_ij`` of the
magnitudes only. With it, a negative input to an exponent of 1/2 gives ``cos(pi / 2) = 0``, so a first
layer that starts out negative cannot reach ``sqrt`` of a positive sum by the mirror-image path.

``regularizer()`` is the L1 penalty of the paper, normalised as a mean: ``mean(|W_r| ++ |W_i|)`` over all
entries of both matrices (the paper's beta schedule is the trainer's job; the mean rather than the sum
keeps its scale independent of the layer size). ``l1_reduction="sum"`` is the Primer's (Mistry et al.
2022, its ``--regualizer-l1``): ``sum |p|`` over every parameter, the gate included (``task=smat``).
``sparsity_error()`` covers ``W_r`` and ``W_i``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._numerics import MAX_EXPONENT, bounded_exp, clamp_, fused_linear
from .base import ArithmeticUnit

#: The paper's epsilon: float32 machine epsilon.
NPU_EPS = float(torch.finfo(torch.float32).eps)
#: the L1 regulariser: ``mean`` of |W| over the weight matrices, or the Primer's ``sum`` over all parameters
L1_REDUCTIONS = ("mean", "sum")


class _NPUBase(ArithmeticUnit):
    """Parameters, init, regulariser and projection shared by NPU and RealNPU."""

    has_imaginary = True

    def __init__(
        self,
        in_features: int,
        out_features: int,
        eps: float = NPU_EPS,
        max_exponent: float = MAX_EXPONENT,
        gated: bool = True,
        signed: bool = True,
        l1_reduction: str = "mean",
    ) -> None:
        super().__init__(in_features, out_features)
        if l1_reduction not in L1_REDUCTIONS:
            choices = ", ".join(L1_REDUCTIONS)
            raise ValueError(f"{type(self).__name__} l1_reduction={l1_reduction!r}; choose from: {choices}")
        self.l1_reduction = l1_reduction
        self.eps = eps
        self.max_exponent = max_exponent
        self.gated = bool(gated)
        self.signed = bool(signed)
        self.W_real = nn.Parameter(torch.empty(out_features, in_features))
        if self.has_imaginary:
            self.W_imag = nn.Parameter(torch.empty(out_features, in_features))
        else:
            self.register_parameter("W_imag", None)
        if self.gated:
            self.gate = nn.Parameter(torch.empty(in_features))
        else:
            self.register_parameter("gate", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.W_real)
        if self.W_imag is not None:
            nn.init.zeros_(self.W_imag)
        if self.gate is not None:
            nn.init.constant_(self.gate, 0.5)

    def effective_weights(self) -> dict[str, torch.Tensor]:
        if self.W_imag is None:
            return {"W_real": self.W_real}
        return {"W_real": self.W_real, "W_imag": self.W_imag}

    def regularizer(self) -> torch.Tensor:
        if self.l1_reduction == "sum":
            every = (p for p in (self.W_real, self.W_imag, self.gate) if p is not None)
            return torch.cat([p.abs().flatten() for p in every]).sum()
        return torch.cat([w.abs().flatten() for w in self.effective_weights().values()]).mean()

    @torch.no_grad()
    def project_(self) -> None:
        if self.gate is not None:
            clamp_(self.gate, 0.0, 1.0)

    def gate_value(self) -> torch.Tensor | None:
        """``g_hat = clamp(g, 0, 1)``, or None without a gate."""
        return None if self.gate is None else torch.clamp(self.gate, 0.0, 1.0)

    def _log_r_and_k(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``log r`` and the sign term ``k = pi * g_hat * [x < 0]``; ``k`` is ``None`` where it is known
        to be 0 (inputs known positive: its products are exact zeros, the same values and gradients
        without them)."""
        g = self.gate_value()
        log_r = torch.log(x.abs() + self.eps) if g is None else torch.log(g * (x.abs() + self.eps) + (1 - g))
        if self.positive_inputs:
            return log_r, None
        scale = math.pi if g is None else math.pi * g
        return log_r, scale * (x < 0).to(x.dtype) * float(self.signed)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, eps={self.eps}, max_exponent={self.max_exponent}, "
            f"gated={self.gated}, signed={self.signed}"
            + (f", l1_reduction={self.l1_reduction}" if self.l1_reduction != "mean" else "")
        )


class NPU(_NPUBase):
    """NPU with real part ``W_real``, imaginary part ``W_imag`` and per-input relevance gate ``gate``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_r, k = self._log_r_and_k(x)
        z_re = fused_linear(log_r, self.W_real)
        z_im = fused_linear(log_r, self.W_imag)
        if k is not None:
            z_re = z_re - fused_linear(k, self.W_imag)
            z_im = fused_linear(k, self.W_real) + z_im
        return bounded_exp(z_re, self.max_exponent) * torch.cos(z_im)
