"""A unit with its own parameters for every sample (Trask et al. 2018 §4.4's configured unit).

:func:`apply_per_sample` runs a template unit under per-sample parameters (``torch.func.functional_call``
under ``vmap``, or a loop for units without a vmap rule: :func:`supports_vmap`);
:func:`effective_weights_per_sample` gives the effective weights each sample's parameters make.
"""

from __future__ import annotations

import torch
from torch import nn


def _vmapped_call(unit: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    def one(p: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(unit, p, (xi.unsqueeze(0),)).squeeze(0)

    return torch.func.vmap(one)(params, x)


def supports_vmap(unit: nn.Module) -> bool:
    """Whether ``unit`` runs under ``torch.func.vmap`` (custom autograd functions may lack a vmap rule)."""
    params = {k: v.detach().unsqueeze(0).expand(2, *v.shape) for k, v in unit.named_parameters()}
    try:
        _vmapped_call(unit, params, torch.ones(2, getattr(unit, "in_features", 1)))
    except RuntimeError:
        return False
    return True


def apply_per_sample(
    unit: nn.Module, params: dict[str, torch.Tensor], x: torch.Tensor, vmap: bool = True
) -> torch.Tensor:
    """``unit`` with parameters ``params[name][i]`` applied to ``x[i]``, for every sample ``i``: (N, out).

    ``vmap=False`` loops over the samples (for units that do not support ``vmap``; slow).
    """
    if vmap:
        return _vmapped_call(unit, params, x)
    rows = [
        torch.func.functional_call(unit, {k: v[i] for k, v in params.items()}, (x[i : i + 1],)).squeeze(0)
        for i in range(x.shape[0])
    ]
    return torch.stack(rows)


class _EffectiveWeights(nn.Module):
    """``forward()`` returns ``unit.effective_weights()``, so ``functional_call`` can swap parameters in."""

    def __init__(self, unit: nn.Module) -> None:
        super().__init__()
        self.unit = unit

    def forward(self) -> dict[str, torch.Tensor]:
        return self.unit.effective_weights()


def effective_weights_per_sample(unit: nn.Module, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``unit.effective_weights()`` under each sample's parameters: ``{name: (N, *shape)}``."""
    adapter = _EffectiveWeights(unit)
    prefixed = {f"unit.{k}": v for k, v in params.items()}
    return torch.func.vmap(lambda p: torch.func.functional_call(adapter, p, ()))(prefixed)
