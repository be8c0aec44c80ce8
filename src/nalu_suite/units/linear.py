"""Non-arithmetic baselines: an affine layer and affine layers followed by a fixed activation.

These are the baselines of Trask et al. (2018, Table 1: "None" and ReLU6, ReLU, Tanh, Sigmoid, Softsign,
SELU, ELU MLPs). ``y = act(W x + b)``; ``bias=True`` by default, like ``torch.nn.Linear`` (Trask et al. do
not say; a bias is the usual baseline), and the same initialisation as ``torch.nn.Linear``
(Kaiming-uniform with ``a = sqrt(5)``, i.e. ``W, b ~ U[-1/sqrt(in), 1/sqrt(in)]``).

No clamps or epsilons. ``regularizer()`` is 0; ``sparsity_error()`` is computed on ``W`` (bias excluded),
so the baselines can be compared with the arithmetic units on the same metric.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ._numerics import linear
from .base import ArithmeticUnit


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


#: Activation name -> function. ``linear`` is the identity.
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "linear": _identity,
    "relu6": F.relu6,
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softsign": F.softsign,
    "selu": F.selu,
    "elu": F.elu,
}


class Dense(ArithmeticUnit):
    """``y = activation(W x + b)`` with ``activation`` one of :data:`ACTIVATIONS`."""

    def __init__(
        self, in_features: int, out_features: int, activation: str = "relu6", bias: bool = True
    ) -> None:
        super().__init__(in_features, out_features)
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid activations: {sorted(ACTIVATIONS)}")
        self.activation = activation
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            nn.init.uniform_(self.bias, -bound, bound)

    def effective_weights(self) -> dict[str, torch.Tensor]:
        return {"W": self.weight}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ACTIVATIONS[self.activation](linear(x, self.weight, self.bias))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, activation={self.activation}, bias={self.bias is not None}"


class Linear(Dense):
    """Affine baseline ``y = W x + b`` (no activation)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, activation="linear", bias=bias)


class DenseReLU6(Dense):
    """``relu6(W x + b)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, activation="relu6", bias=bias)


class DenseReLU(Dense):
    """``relu(W x + b)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, activation="relu", bias=bias)


class DenseTanh(Dense):
    """``tanh(W x + b)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, activation="tanh", bias=bias)


class DenseSigmoid(Dense):
    """``sigmoid(W x + b)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, activation="sigmoid", bias=bias)


class DenseSoftsign(Dense):
    """``softsign(W x + b)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, activation="softsign", bias=bias)


class DenseSELU(Dense):
    """``selu(W x + b)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, activation="selu", bias=bias)


class DenseELU(Dense):
    """``elu(W x + b)``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, activation="elu", bias=bias)
