"""The interface every arithmetic unit shares.

A unit maps ``(..., in_features) -> (..., out_features)``. Besides ``forward`` it exposes:

* ``regularizer()``: the unit's own (unscaled) regularisation term, a scalar tensor; 0 where the
  unit has none. The training loop multiplies it by a scheduled weight (Madsen & Johansen 2020).
* ``sparsity_error()``: Madsen & Johansen's ``max_ij min(|W_ij|, |1 - |W_ij||)`` over the unit's
  effective weights (0 = every weight is exactly -1, 0 or 1).
* ``effective_weights()``: the weights the unit actually computes with (e.g. ``tanh(W_hat) * sigmoid(M_hat)``
  for NAC+), by name; ``sparsity_error`` is computed on these.
* ``project_()``: called after every optimiser step; units whose weights live in a box (NAU, NMU,
  NPU) clamp them here. A no-op by default.
* ``reset_parameters()``: re-draws the unit's initial weights (e.g. for iNALU-style re-initialisation).

``positive_inputs`` is set by a model that knows every input of the unit is ``> 0`` (the static task's
first layer on ``U[lo, hi]`` with ``lo > 0``). A unit may then leave out the terms that only inputs
``<= 0`` change (iNALU's sign retrieval is then exactly 1): the same values and gradients, less work.
"""

from __future__ import annotations

import torch
from torch import nn


def sparsity_error_of(*weights: torch.Tensor) -> torch.Tensor:
    """Madsen & Johansen's sparsity error, ``max_ij min(|W_ij|, |1 - |W_ij||)``, over all given tensors."""
    errors = [torch.minimum(w.abs(), (1 - w.abs()).abs()).max() for w in weights if w.numel() > 0]
    if not errors:
        return torch.zeros(())
    return torch.stack(errors).max()


class ArithmeticUnit(nn.Module):
    """Base class: ``(in_features, out_features, **options)`` constructor and the shared hooks."""

    #: every input is known to be > 0 (set by the model, see the module docstring)
    positive_inputs: bool = False

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"{type(self).__name__}: in_features and out_features must be >= 1, "
                f"got {in_features} and {out_features}"
            )
        self.in_features = in_features
        self.out_features = out_features

    def reset_parameters(self) -> None:
        """Re-draw the initial weights (every concrete unit overrides this)."""

    def effective_weights(self) -> dict[str, torch.Tensor]:
        return {}

    def regularizer(self) -> torch.Tensor:
        return self._zero()

    def sparsity_error(self) -> torch.Tensor:
        weights = self.effective_weights()
        if not weights:
            return self._zero()
        return sparsity_error_of(*weights.values()).detach()

    @torch.no_grad()
    def project_(self) -> None:
        """Keep constrained weights in their box after an optimiser step (no-op by default)."""

    def _zero(self) -> torch.Tensor:
        p = next(self.parameters(), None)
        return torch.zeros((), device=p.device if p is not None else None)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"
