"""Arithmetic units behind one interface (:class:`ArithmeticUnit`) and a name registry.

``build_unit(name, in_features, out_features, **options)`` constructs any registered unit; ``UNITS`` maps
each name to its class and ``UNIT_NAMES`` lists the names. Recurrent cells live in
:mod:`nalu_suite.units.cells`.
"""

from __future__ import annotations

import inspect

from .base import ArithmeticUnit, sparsity_error_of
from .gnalu import GNALU
from .inalu import INALU
from .linear import (
    Dense,
    DenseELU,
    DenseReLU,
    DenseReLU6,
    DenseSELU,
    DenseSigmoid,
    DenseSoftsign,
    DenseTanh,
    Linear,
)
from .nac import NACAdd, NACMul
from .nalu import NALU
from .nau import NAU
from .nmru import NMRU
from .nmu import NMU
from .npu import NPU
from .nru import NRU
from .realnpu import RealNPU
from .realnpu_mod import ModifiedRealNPU

#: Unit name -> class; every class takes ``(in_features, out_features, **options)``.
UNITS: dict[str, type[ArithmeticUnit]] = {
    "linear": Linear,
    "relu6": DenseReLU6,
    "relu": DenseReLU,
    "tanh": DenseTanh,
    "sigmoid": DenseSigmoid,
    "softsign": DenseSoftsign,
    "selu": DenseSELU,
    "elu": DenseELU,
    "nac_add": NACAdd,
    "nac": NACAdd,
    "nac_mul": NACMul,
    "nalu": NALU,
    "inalu": INALU,
    "nau": NAU,
    "nmu": NMU,
    "npu": NPU,
    "realnpu": RealNPU,
    "gnalu": GNALU,
    "nru": NRU,
    "nmru": NMRU,
    "realnpu_mod": ModifiedRealNPU,
}

#: All registered unit names (``nac`` is an alias of ``nac_add``).
UNIT_NAMES: tuple[str, ...] = tuple(UNITS)


def unit_options(name: str) -> tuple[str, ...]:
    """The option names ``build_unit(name, ...)`` accepts (constructor keywords after the two sizes)."""
    cls = _lookup(name)
    params = list(inspect.signature(cls.__init__).parameters.values())[3:]  # self, in_features, out_features
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def _lookup(name: str) -> type[ArithmeticUnit]:
    try:
        return UNITS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown unit {name!r}; valid units: {', '.join(sorted(UNITS))}") from None


def build_unit(name: str, in_features: int, out_features: int, **options: object) -> ArithmeticUnit:
    """Construct the unit registered as ``name``.

    Raises ``ValueError`` for an unknown name (listing the valid ones) and ``TypeError`` naming the first
    option the unit does not accept (e.g. ``unit 'nau' got an unexpected option 'foo'``).
    """
    cls = _lookup(name)
    valid = unit_options(name)
    for option in options:
        if option not in valid:
            accepted = ", ".join(valid) if valid else "none"
            raise TypeError(f"unit {name!r} got an unexpected option {option!r}; valid options: {accepted}")
    return cls(in_features, out_features, **options)


__all__ = [
    "UNITS",
    "UNIT_NAMES",
    "ArithmeticUnit",
    "Dense",
    "DenseELU",
    "DenseReLU",
    "DenseReLU6",
    "DenseSELU",
    "DenseSigmoid",
    "DenseSoftsign",
    "DenseTanh",
    "GNALU",
    "INALU",
    "Linear",
    "ModifiedRealNPU",
    "NACAdd",
    "NACMul",
    "NALU",
    "NAU",
    "NMRU",
    "NMU",
    "NPU",
    "NRU",
    "RealNPU",
    "build_unit",
    "sparsity_error_of",
    "unit_options",
]
