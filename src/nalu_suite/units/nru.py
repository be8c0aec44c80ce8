"""Neural Reciprocal Unit, NRU (Mistry, Li, Zhang & Hare, "Learning Division with Neural Arithmetic Logic
Modules", arXiv 2110.05177, 2021; TMLR version "Exploring the Learning Mechanisms of Neural Division
Modules", 2022). The equation below is the NRU as implemented in the authors' code
(``bmistry4/nalm-division``, ``ReciprocalNMULayer``, ``mnac`` mode ``div``); the paper's section and equation
numbers were not checked.

    y_j = prod_i ( sign(x_i) * |x_i| ** W_ij * A(W_ij) + 1 - A(W_ij) ),   W in [-1, 1]

``A(W)`` is a smooth stand-in for ``|W|``: ``tanh(1000 W) ** 2`` in training and exactly ``|W|`` in
evaluation (as in the authors' code). At the discrete weights both agree: ``W = 1`` gives the factor ``x_i``,
``W = -1`` gives ``1 / x_i`` (sign kept), ``W = 0`` gives the neutral factor 1. So the NRU represents any
product of inputs and reciprocals, e.g. ``a / b`` with ``W = [1, -1]``. (Fractional weights mean different
things in the two modes; e.g. ``W = 1/2`` is ``sign(x) sqrt|x|`` in training but
``(sign(x) sqrt|x| + 1) / 2`` in evaluation, so a root is *not* representable.)

Initialisation, clamp and regulariser are the authors' (NAU-style):

* ``W ~ U[-r, r]``, ``r = min(0.5, sqrt(3) * sqrt(2 / (in + out)))``;
* ``W`` clamped to ``[-1, 1]`` by ``project_()`` after every optimiser step, and inside ``forward``;
  ``grad_at_bounds=True`` keeps the gradient of a weight that sits exactly on a bound (torch's clamp gives
  it none; the authors' code does, ``_numerics.box``);
* ``regularizer()`` = NAU sparsity ``mean_ij min(|W_ij|, |1 - |W_ij||)`` (the paper: lambda = 10, ramped in
  over 20k -> 35k steps for 2 inputs; the ramp is the trainer's job).

Project additions (numerics; not in the paper, whose code computes ``|x| ** W`` directly and gives
``inf``/``nan`` at ``x = 0`` with ``W < 0``):

* ``|x|`` is clamped below at ``eps`` (default float32 machine epsilon, ~1.19e-7) before the power, so
  ``|x| ** W <= 1 / eps`` for ``W >= -1`` and the ``log|x|`` in the weight gradient is finite (an input with
  ``0 < |x| < eps`` counts as ``sign(x) eps``, for either sign of ``W``, like the NPU's ``|x| + eps``). Since
  ``sign(0) = 0``, an input that is exactly 0 gives the factor ``1 - A(W)``: 0 for ``W = +-1`` (so ``a / 0``
  is 0, not inf) and 1 for ``W = 0``.
* The product is ``_numerics.bounded_prod`` (as in the NMU): exact where ``|y| <= e**max_exponent``, finite
  gradients with zero factors.

Options: ``sharpness=1000`` (the ``tanh(sharpness W) ** 2`` of training; ``None`` uses ``|W|`` in training
too), ``eps``, ``max_exponent``, and ``div_mode``: ``div`` (above, the paper's main runs) or ``div-sepSign``
(the authors' code's other mode, ``--nru-div-mode div-sepSign``): the product of the magnitudes
``|x_i| ** W_ij A(W_ij) + 1 - A(W_ij)`` times the sign ``prod_i sign(x_i) ** round(W_ij)``, i.e. only inputs
whose weight rounds to +-1 give their sign, without gradient. In ``div`` mode an input with a small nonzero
weight gives its sign in training (``A(0.004) ~ 1``) but not in evaluation (docs/benchmarks.md, section 2).
"""

from __future__ import annotations

import torch

from ._numerics import MAX_EXPONENT, bounded_prod, parity_sign
from .nau import NAU
from .npu import NPU_EPS

#: the authors' ``--nru-div-mode`` values (module docstring)
DIV_MODES = ("div", "div-sepSign")


class NRU(NAU):
    """NRU: ``prod_i (sign(x_i) |x_i| ** W_ij A(W_ij) + 1 - A(W_ij))`` with ``W`` kept in ``[-1, 1]``: the
    NAU's weight, initialisation, clamp and regulariser, its weights read as exponents."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        sharpness: float | None = 1000.0,
        eps: float = NPU_EPS,
        max_exponent: float = MAX_EXPONENT,
        grad_at_bounds: bool = False,
        div_mode: str = "div",
    ) -> None:
        super().__init__(in_features, out_features, grad_at_bounds=grad_at_bounds)  # W, U[-r, r] as the NAU
        if sharpness is not None and not float(sharpness) > 0:
            raise ValueError(f"NRU sharpness={sharpness!r} must be > 0 (or None for |W| in training)")
        if not float(eps) > 0:
            raise ValueError(f"NRU eps={eps!r} must be > 0")
        if div_mode not in DIV_MODES:
            raise ValueError(f"NRU div_mode={div_mode!r} is not valid; choose from: {', '.join(DIV_MODES)}")
        self.div_mode = div_mode
        self.sharpness = None if sharpness is None else float(sharpness)
        self.eps = float(eps)
        self.max_exponent = max_exponent

    def relevance(self, w: torch.Tensor) -> torch.Tensor:
        """``A(W)``: ``tanh(sharpness W) ** 2`` in training (unless ``sharpness=None``), ``|W|`` otherwise."""
        if self.training and self.sharpness is not None:
            return torch.tanh(self.sharpness * w).square()
        return w.abs()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        a = self.relevance(w)
        x = x.unsqueeze(-2)  # (..., 1, in)
        power = torch.pow(x.abs().clamp_min(self.eps), w)  # (..., out, in), in [eps, max(|x|, 1/eps)]
        if self.div_mode == "div":
            return bounded_prod(torch.sign(x) * power * a + (1 - a), self.max_exponent)
        flips = ((x < 0) & (w.detach().round() != 0)).sum(-1)  # negative inputs whose weight rounds to +-1
        return bounded_prod(power * a + (1 - a), self.max_exponent) * parity_sign(flips, x.dtype)

    def extra_repr(self) -> str:
        mode = f", div_mode={self.div_mode}" if self.div_mode != "div" else ""
        return (
            f"{super().extra_repr()}, sharpness={self.sharpness}, eps={self.eps}, "
            f"max_exponent={self.max_exponent}{mode}"
        )
