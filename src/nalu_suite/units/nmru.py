"""Neural Multiplicative Reciprocal Unit, NMRU (Mistry, Li, Zhang & Hare, "Learning Division with Neural
Arithmetic Logic Modules", arXiv 2110.05177, 2021; TMLR version "Exploring the Learning Mechanisms of Neural
Division Modules", 2022). The equations are the NMRU with sign retrieval as implemented in the authors' code
(``bmistry4/nalm-division``, ``ConcatReciprocalNMUSignRetrievalLayer``, ``--layer-type SignNMRU``, the
variant of the paper's main results); the paper's section and equation numbers were not checked.

The input is concatenated with its reciprocal and fed to an NMU on magnitudes, with a RealNPU-style sign:

    x~   = [x, 1 / x]                                       (2 * in features; W has shape (out, 2 * in))
    |y_j| = prod_k ( W_jk |x~_k| + 1 - W_jk ),               W in [0, 1]
    y_j  = |y_j| * cos(pi * sum_k W_jk [x~_k < 0])

So ``W_jk = 1`` on ``x_i`` multiplies by ``x_i``, on ``1 / x_i`` divides by it, ``0`` ignores it; e.g.
``a / b`` is ``W = [1, 0 | 0, 1]`` and the cosine gives ``sign(a) sign(b)``.

``noise=[lo, hi]`` applies the sNMU's reversible training noise (``nmu.py``) to the NMU's inputs (the
magnitudes, with sign retrieval), as the authors' code can (``nmu_noise``); off by default, as in the
paper's main runs.

``sign_angle="net"`` (project variant, not the paper's) counts a weight on ``1 / x_i`` against the angle:
``cos(pi * sum_i (W_ji - W_j,in+i) [x_i < 0])``. At discrete weights both angles differ by an even multiple
of ``pi`` and give the same sign; in between, a cancelling pair ``x_i * (1 / x_i)`` (both weights rising
together) leaves the net angle unchanged, whereas the paper's ``"sum"`` angle passes through an odd
multiple of ``pi``, the wrong sign, on the way from one pair to the next (docs/benchmarks.md, section 2).

``sign_retrieval=False`` is the paper's vanilla NMRU (an ablation): the NMU on the signed ``x~``,
``y_j = prod_k (W_jk x~_k + 1 - W_jk)``, which also carries the sign at discrete weights.

Initialisation, clamp and regulariser are the authors' (NMU-style):

* ``W ~ U[0.25, 0.75]``; ``init_range=[lo, hi]`` (the NMU's project option) draws ``U[lo, hi]`` instead:
  started at U[0.05, 0.15] (the 20 weights' sum near 2, the sign of ``a / b`` on negative inputs), the
  NMRU solves all 225 training sets of the Division benchmark, against 89% from the paper's start
  (docs/benchmarks.md, section 2);
* ``W`` clamped to ``[0, 1]`` by ``project_()`` after every optimiser step, and inside ``forward``;
  ``grad_at_bounds=True`` keeps the gradient of a weight that sits exactly on a bound (torch's clamp gives
  it none; the authors' code does, ``_numerics.box``);
* ``regularizer()`` = NMU sparsity ``mean_jk min(|W_jk|, |1 - W_jk|)`` (the paper: lambda = 10, ramped in as
  for the NRU; the ramp is the trainer's job).

The paper trains it with gradient-norm clipping 1.0 and Adam at lr 1e-2 (trainer settings, not the unit's).

Reciprocal (project change): the authors use ``1 / (x + eps)`` in training (``eps`` = float32 machine
epsilon) and the exact ``1 / x`` in evaluation; the first has a pole at ``x = -eps`` and the second at 0.
Here both modes use ``sign(x) / max(|x|, eps)`` with ``sign(0) := +1``: the exact reciprocal for
``|x| >= eps`` (the paper's training value differs from it by a relative ``eps / |x|``), ``+-1 / eps`` below,
and a zero gradient for ``|x| < eps``. The product is ``_numerics.bounded_prod`` (as in the NMU).
"""

from __future__ import annotations

import math

import torch

from ._numerics import MAX_EXPONENT, linear
from .nmu import NMU
from .npu import NPU_EPS

#: how a weight on ``1 / x_i`` enters the sign's angle: ``sum`` (the paper's) or ``net`` (subtracted)
SIGN_ANGLES = ("sum", "net")


class NMRU(NMU):
    """NMRU: an NMU over ``[x, 1/x]`` magnitudes with a cosine sign; ``W`` of shape ``(out, 2 in)``: the
    NMU's weight, initialisation, clamp and regulariser over the ``2 in`` inputs ``[x, 1/x]``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        sign_retrieval: bool = True,
        eps: float = NPU_EPS,
        max_exponent: float = MAX_EXPONENT,
        grad_at_bounds: bool = False,
        noise: tuple[float, float] | list[float] | None = None,
        sign_angle: str = "sum",
        init_range: tuple[float, float] | list[float] = (0.25, 0.75),
    ) -> None:
        super().__init__(  # W: (out, 2 in)
            2 * in_features,
            out_features,
            max_exponent,
            noise=noise,
            grad_at_bounds=grad_at_bounds,
            init_range=init_range,
        )
        self.in_features = in_features
        if not float(eps) > 0:
            raise ValueError(f"NMRU eps={eps!r} must be > 0")
        self.sign_retrieval = bool(sign_retrieval)
        if sign_angle not in SIGN_ANGLES:
            raise ValueError(f"NMRU sign_angle={sign_angle!r}; choose from: {', '.join(SIGN_ANGLES)}")
        self.sign_angle = sign_angle
        self.eps = float(eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inverse_magnitude = 1 / x.abs().clamp_min(self.eps)
        if self.sign_retrieval:  # the NMU (with its training noise, if any) on magnitudes, a cosine sign
            negative = (x < 0).to(x.dtype)
            on_reciprocals = negative if self.sign_angle == "sum" else -negative
            sign = torch.cos(math.pi * linear(torch.cat([negative, on_reciprocals], dim=-1), self.weight))
            return super().forward(torch.cat([x.abs(), inverse_magnitude], dim=-1)) * sign
        reciprocal = torch.where(x < 0, -inverse_magnitude, inverse_magnitude)
        return super().forward(torch.cat([x, reciprocal], dim=-1))

    def extra_repr(self) -> str:
        extra = f", sign_angle={self.sign_angle}" if self.sign_angle != "sum" else ""
        return f"{super().extra_repr()}, sign_retrieval={self.sign_retrieval}{extra}, eps={self.eps}"
