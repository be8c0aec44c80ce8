"""Golden-ratio NALU, G-NALU, as benchmarked in Mistry, Farrahi & Hare, "A Primer for Neural Arithmetic
Logic Modules", JMLR 23(185), 2022 (its single-module arithmetic task; code ``bmistry4/nalm-benchmark``,
``--layer-type NALU --nalu-gate golden-ratio --nalu-mul golden-ratio --nac-weight golden-ratio``).

The NALU (``nalu.py``; Trask et al. 2018, eq. 2) with Euler's number replaced by the golden ratio
``phi = (1 + sqrt 5) / 2`` in the NAC weight, the gate and the multiplicative path:

    tanh_phi(v)    = (phi**v - phi**-v) / (phi**v + phi**-v) = tanh(v ln phi)
    sigmoid_phi(v) = 1 / (1 + phi**-v)                       = sigmoid(v ln phi)
    W = tanh_phi(W_hat) * sigmoid_phi(M_hat),   g = sigmoid_phi(G x)
    a = W x,   m = phi ** (W log_phi(|x| + eps)),   y = g * a + (1 - g) * m

``phi ** (W log_phi u) = exp(W ln u)`` exactly, so the multiplicative path is the NALU's and is computed as
``exp(W log(|x| + eps))`` (with the NALU's ``max_exponent`` clamp). The golden ratio therefore acts as a
gentler slope, ``ln phi ~ 0.481``, on the raw weights and the gate logits: they must be about twice as large
as the NALU's to reach the same ``W`` or ``g``.

Checked against the authors' code (``nalm-benchmark``: ``functional/golden_ratio_base.py`` defines
``tanh`` and ``sigmoid`` in base phi, ``functional/nac_weight.py`` the weight ``tanh_phi(W_hat) *
sigmoid_phi(M_hat)``, ``layer/_abstract_nalu.py`` the gate and the ``phi ** (z / ln phi)`` product); the
original G-NALU paper's citation is not in the project's notes.

Options, initialisation (the NAC variance-matching ``U[-r, r]`` on the raw weights, as the NALU; the raw
parameters are the same tensors, only read through the slope ``ln phi``), regulariser (none) and
``sparsity_error`` are the NALU's.
"""

from __future__ import annotations

import math

import torch

from ._numerics import linear, nac_weight
from .nalu import NALU

#: The golden ratio, phi = (1 + sqrt 5) / 2.
PHI = (1.0 + math.sqrt(5.0)) / 2.0
#: ``ln phi``: ``tanh_phi(v) = tanh(v ln phi)``, ``sigmoid_phi(v) = sigmoid(v ln phi)``.
LN_PHI = math.log(PHI)


class GNALU(NALU):
    """G-NALU: the NALU with base-``phi`` tanh/sigmoid in the NAC weight and the gate."""

    slope = LN_PHI

    @property
    def weight_add(self) -> torch.Tensor:
        return nac_weight(self.slope * self.W_hat, self.slope * self.M_hat)

    @property
    def weight_mul(self) -> torch.Tensor:
        if self.shared_weights:
            return self.weight_add
        return nac_weight(self.slope * self.W_hat_mul, self.slope * self.M_hat_mul)

    def gate_value(self, x: torch.Tensor) -> torch.Tensor:
        """``sigmoid_phi`` of the gate logit ``G x`` (or the per-output logit for ``gate="scalar"``)."""
        if self.gate == "input":
            return torch.sigmoid(self.slope * linear(x, self.G))
        return torch.sigmoid(self.slope * self.gate_logit)
