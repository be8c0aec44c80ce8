"""Neural Multiplication Unit, NMU (Madsen & Johansen, "Neural Arithmetic Units", ICLR 2020, Sec. 2.4).

    y_j = prod_i (W_ij x_i + 1 - W_ij),   W in [0, 1]

* ``W`` is clamped to ``[0, 1]`` by ``project_()`` after every optimiser step (the paper's clipping) and also
  inside ``forward``/``effective_weights`` (unit gradient inside the box);
  ``grad_at_bounds=True`` keeps the gradient of a weight that sits exactly on a bound (torch's clamp gives
  it none; the authors' code does, ``_numerics.box``).
* Init ``W ~ U[0.25, 0.75]``, i.e. mean 1/2 and ``r = min(0.25, sqrt(3) * 1/2) = 0.25`` (the authors'
  published setting: E[W] = 1/2 so each factor starts half-way between "ignore" and "use" the input).
  ``init_range=[lo, hi]`` (a project option) draws ``U[lo, hi]`` instead: with many inputs of large
  magnitude the published start is exponential in the input size (10 inputs of |x| ~ 15 give ~1e9), and
  weights near 0 start the product near 1 (docs/benchmarks.md, SMAT at input size 10).
* ``regularizer()`` is the paper's ``R_sparse = mean_ij min(|W_ij|, |1 - W_ij|)``.
* The product is computed by ``_numerics.bounded_prod`` (project addition): exact (direct ``torch.prod``)
  where it is finite and ``<= e**30 ~ 1.07e13`` in magnitude, otherwise ``sign * e**min(sum log|f|, 30)``;
  e.g. 100 inputs of 1e6 would give 1e600, which overflows float32. Its backward computes the exclusive
  products ``prod_{k != i} f_k`` in log-space with explicit handling of zero factors, so gradients are
  finite and correct when a factor is exactly 0 (e.g. ``W = 1, x = 0``) and bounded by ``e**30`` when huge.
* ``noise=[lo, hi]``: the stochastic NMU, sNMU (Mistry, Henderson & Zhang 2022, "Improving the Robustness
  of Neural Multiplication Units with Reversible Stochasticity"). In training each input is multiplied by
  its own ``n ~ U[lo, hi]`` and the output divided by the NMU of the noise alone,
  ``y = NMU(x * n) / NMU(n)``. With every ``W`` in {0, 1} the noise cancels exactly (``y = NMU(x)``);
  with fractional weights it does not, which pushes the weights to {0, 1}. Evaluation uses no noise.
"""

from __future__ import annotations

import torch
from torch import nn

from ._numerics import MAX_EXPONENT, bounded_prod, box, clamp_
from .base import ArithmeticUnit


class NMU(ArithmeticUnit):
    """NMU: ``y_j = prod_i (W_ij x_i + 1 - W_ij)`` with ``W`` kept in ``[0, 1]``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        max_exponent: float = MAX_EXPONENT,
        noise: tuple[float, float] | list[float] | None = None,
        grad_at_bounds: bool = False,
        init_range: tuple[float, float] | list[float] = (0.25, 0.75),
    ) -> None:
        super().__init__(in_features, out_features)
        if len(init_range) != 2 or not 0 <= float(init_range[0]) <= float(init_range[1]) <= 1:
            raise ValueError(f"NMU init_range={list(init_range)!r} must be [lo, hi] with 0 <= lo <= hi <= 1")
        self.init_range = (float(init_range[0]), float(init_range[1]))
        self.max_exponent = max_exponent
        self.grad_at_bounds = bool(grad_at_bounds)
        if noise is not None:
            if len(noise) != 2 or not 0 < float(noise[0]) <= float(noise[1]):
                raise ValueError(f"NMU noise={list(noise)!r} must be [lo, hi] with 0 < lo <= hi")
            noise = (float(noise[0]), float(noise[1]))
        self.noise = noise
        self.W = nn.Parameter(torch.empty(out_features, in_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.W, *self.init_range)

    @property
    def weight(self) -> torch.Tensor:
        return box(self.W, 0.0, 1.0, self.grad_at_bounds)

    def effective_weights(self) -> dict[str, torch.Tensor]:
        return {"W": self.weight}

    def regularizer(self) -> torch.Tensor:
        w = self.weight
        return torch.minimum(w.abs(), (1 - w).abs()).mean()

    @torch.no_grad()
    def project_(self) -> None:
        clamp_(self.W, 0.0, 1.0)

    def product(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        factors = w * x.unsqueeze(-2) + (1 - w)  # (..., out, in)
        return bounded_prod(factors, self.max_exponent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.noise is None or not self.training:
            return self.product(x)
        lo, hi = self.noise
        n = torch.rand_like(x) * (hi - lo) + lo
        return self.product(x * n) / self.product(n)

    def extra_repr(self) -> str:
        noise = f", noise={list(self.noise)}" if self.noise else ""
        bounds = ", grad_at_bounds=True" if self.grad_at_bounds else ""
        init = f", init_range={list(self.init_range)}" if self.init_range != (0.25, 0.75) else ""
        return f"{super().extra_repr()}, max_exponent={self.max_exponent}{noise}{bounds}{init}"
