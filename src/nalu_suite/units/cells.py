"""Recurrent cells behind one interface, for the recurrent tasks (e.g. Trask et al. 2018, MNIST counting).

``RecurrentCell`` API:

* ``hidden_size``; ``initial_state(batch_size, device=None, dtype=None)``;
* ``forward(x_t, state) -> (h_t, new_state)`` with ``x_t`` of shape ``(batch, input_size)`` and ``h_t`` of
  shape ``(batch, hidden_size)``; ``state`` is ``h`` for every cell except LSTM, where it is ``(h, c)``;
* ``regularizer()``, ``sparsity_error()``, ``project_()`` as for the units.

Cells:

* ``UnitCell``: ``h_t = unit([x_t, h_{t-1}])`` for any registered unit (built with
  ``in = input_size + hidden_size``, ``out = hidden_size``). The initial state is filled with
  ``initial_value`` (default 0.0). Note: for multiplicative units (NMU, NAC•, NALU's product path, NPU) a
  zero initial state makes every product that uses ``h`` zero (NMU/NPU) or tiny (NAC•, via
  ``log(0 + eps)``); use ``initial_value=1.0`` for running products.
* ``LSTMCell``, ``GRUCell``, ``RNNCell(nonlinearity="tanh" | "relu")``: the ``torch.nn`` cells (their
  parameters, initialisation and equations) with zero initial state. The step is written out with the
  equations ATen's CPU cells compute, rather than calling the fused ``torch.nn`` op, because
  ``torch.func.vmap`` (the replica engine, ``nalu_suite/replicas/``) has no batching rule for
  ``lstm_cell``. They have no regulariser; their ``sparsity_error()`` is computed on their weight matrices
  (biases excluded), like the dense baselines.

``build_cell(name, input_size, hidden_size, **options)``: ``lstm``, ``gru``, ``rnn_tanh``, ``rnn_relu``, or
any unit name (options are passed to the unit, except ``initial_value``). ``run_cell`` unrolls a cell over
a ``(batch, time, features)`` sequence.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from . import UNITS, build_unit
from .base import sparsity_error_of

State = Any  # a Tensor, or a tuple of Tensors for LSTM


class RecurrentCell(nn.Module):
    """Base class of all cells: one step ``(x_t, state) -> (h_t, new_state)``."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(
                f"{type(self).__name__}: input_size and hidden_size must be >= 1, "
                f"got {input_size} and {hidden_size}"
            )
        self.input_size = input_size
        self.hidden_size = hidden_size

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> State:
        return torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)

    def forward(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        raise NotImplementedError

    def regularizer(self) -> torch.Tensor:
        return self._zero()

    def sparsity_error(self) -> torch.Tensor:
        weights = [p for name, p in self.named_parameters() if name.split(".")[-1].startswith("weight")]
        if not weights:
            return self._zero()
        return sparsity_error_of(*weights).detach()

    @torch.no_grad()
    def project_(self) -> None:
        """Keep constrained weights in their box (no-op for the classic cells)."""

    def _zero(self) -> torch.Tensor:
        p = next(self.parameters(), None)
        return torch.zeros((), device=p.device if p is not None else None)

    def extra_repr(self) -> str:
        return f"input_size={self.input_size}, hidden_size={self.hidden_size}"


class UnitCell(RecurrentCell):
    """``h_t = unit(concat(x_t, h_{t-1}))`` for any arithmetic unit; initial state ``initial_value``."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        unit: str = "nau",
        initial_value: float = 0.0,
        **unit_options: Any,
    ) -> None:
        super().__init__(input_size, hidden_size)
        self.unit_name = unit
        self.initial_value = float(initial_value)
        self.unit = build_unit(unit, input_size + hidden_size, hidden_size, **unit_options)

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        return torch.full((batch_size, self.hidden_size), self.initial_value, device=device, dtype=dtype)

    def forward(self, x_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.unit(torch.cat([x_t, state], dim=-1))
        return h, h

    def regularizer(self) -> torch.Tensor:
        return self.unit.regularizer()

    def sparsity_error(self) -> torch.Tensor:
        return self.unit.sparsity_error()

    @torch.no_grad()
    def project_(self) -> None:
        self.unit.project_()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, unit={self.unit_name!r}, initial_value={self.initial_value}"


def _affine(cell: nn.RNNCellBase, x_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """``W_ih x + b_ih + W_hh h + b_hh`` of a ``torch.nn`` cell (biases may be absent)."""
    return nn.functional.linear(x_t, cell.weight_ih, cell.bias_ih) + nn.functional.linear(
        h, cell.weight_hh, cell.bias_hh
    )


class LSTMCell(RecurrentCell):
    """``torch.nn.LSTMCell``; state ``(h, c)``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size)
        self.cell = nn.LSTMCell(input_size, hidden_size, bias=bias)

    def initial_state(
        self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = torch.zeros(batch_size, self.hidden_size, device=device, dtype=dtype)
        return zeros, zeros.clone()

    def forward(
        self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        h, c = state
        gates = _affine(self.cell, x_t, h)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class GRUCell(RecurrentCell):
    """``torch.nn.GRUCell``; state ``h``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size)
        self.cell = nn.GRUCell(input_size, hidden_size, bias=bias)

    def forward(self, x_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cell = self.cell
        gi = nn.functional.linear(x_t, cell.weight_ih, cell.bias_ih)
        gh = nn.functional.linear(state, cell.weight_hh, cell.bias_hh)
        i_r, i_z, i_n = gi.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        reset = torch.sigmoid(i_r + h_r)
        update = torch.sigmoid(i_z + h_z)
        new = torch.tanh(i_n + reset * h_n)
        h = new + update * (state - new)
        return h, h


class RNNCell(RecurrentCell):
    """``torch.nn.RNNCell`` (Elman RNN) with ``nonlinearity`` ``"tanh"`` or ``"relu"``; state ``h``."""

    def __init__(
        self, input_size: int, hidden_size: int, nonlinearity: str = "tanh", bias: bool = True
    ) -> None:
        super().__init__(input_size, hidden_size)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self.cell = nn.RNNCell(input_size, hidden_size, bias=bias, nonlinearity=nonlinearity)

    def forward(self, x_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pre = _affine(self.cell, x_t, state)
        h = torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)
        return h, h


class RNNTanhCell(RNNCell):
    """Elman RNN cell with ``tanh``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, nonlinearity="tanh", bias=bias)


class RNNReLUCell(RNNCell):
    """Elman RNN cell with ``relu``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__(input_size, hidden_size, nonlinearity="relu", bias=bias)


#: The classic (non-unit) cells by name.
CLASSIC_CELLS: dict[str, type[RecurrentCell]] = {
    "lstm": LSTMCell,
    "gru": GRUCell,
    "rnn_tanh": RNNTanhCell,
    "rnn_relu": RNNReLUCell,
}

#: Cell name -> factory ``(input_size, hidden_size, **options) -> RecurrentCell``: the classic cell classes,
#: and for every unit name ``functools.partial(UnitCell, unit=name)``.
CELLS: dict[str, Callable[..., RecurrentCell]] = {
    **CLASSIC_CELLS,
    **{name: functools.partial(UnitCell, unit=name) for name in UNITS if name not in CLASSIC_CELLS},
}

#: All cell names: the classic cells, then every unit name.
CELL_NAMES: tuple[str, ...] = tuple(CELLS)


def build_cell(name: str, input_size: int, hidden_size: int, **options: Any) -> RecurrentCell:
    """Construct the cell registered as ``name``.

    Raises ``ValueError`` for an unknown name (listing the valid ones) and ``TypeError`` naming an option the
    cell (or, for unit cells, the unit) does not accept.
    """
    if not isinstance(name, str) or name not in CELLS:
        raise ValueError(f"unknown cell {name!r}; valid cells: {', '.join(sorted(CELLS))}")
    if name in CLASSIC_CELLS:
        cls = CLASSIC_CELLS[name]
        params = list(inspect.signature(cls.__init__).parameters)[3:]  # self, input_size, hidden_size
        for option in options:
            if option not in params:
                raise TypeError(
                    f"cell {name!r} got an unexpected option {option!r}; valid options: {', '.join(params)}"
                )
        return cls(input_size, hidden_size, **options)
    if "unit" in options:
        raise TypeError(f"cell {name!r} got an unexpected option 'unit' (the unit is given by the cell name)")
    return UnitCell(input_size, hidden_size, unit=name, **options)


def run_cell(cell: RecurrentCell, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
    """Unroll ``cell`` over ``x`` of shape ``(batch, time, features)``.

    Returns ``(outputs, final_state)`` with ``outputs`` of shape ``(batch, time, hidden_size)``; ``state``
    defaults to ``cell.initial_state(batch, x.device, x.dtype)``.
    """
    if x.dim() != 3:
        raise ValueError(f"run_cell expects x of shape (batch, time, features), got {tuple(x.shape)}")
    if state is None:
        state = cell.initial_state(x.shape[0], device=x.device, dtype=x.dtype)
    outputs = []
    for x_t in x.unbind(dim=1):
        h, state = cell(x_t, state)
        outputs.append(h)
    if not outputs:
        return x.new_zeros(x.shape[0], 0, cell.hidden_size), state
    return torch.stack(outputs, dim=1), state
