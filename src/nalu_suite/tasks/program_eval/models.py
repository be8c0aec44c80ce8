"""The program-evaluation models (Trask et al. 2018 §4.4).

:class:`ConfiguredUnitModel`, the paper's: a controller reads the program and a hypernetwork configures an
arithmetic unit per program, which computes the answer from the literals (with Madsen & Johansen's sparsity
regulariser, :func:`sparsity_terms`, and the gain schedule, :func:`gain_at`); :class:`DirectRegressionModel`,
the baseline: a recurrent cell reads the program and a readout regresses the answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from nalu_suite.tasks.base import ArithmeticModel
from nalu_suite.tasks.program_eval.encoding import literal_positions
from nalu_suite.tasks.program_eval.per_sample import (
    apply_per_sample,
    effective_weights_per_sample,
    supports_vmap,
)
from nalu_suite.tasks.program_eval.reader import SequenceReader
from nalu_suite.units import build_unit

#: Where the configured parameters come from: the controller's outputs at the literals, or its final output.
CONFIGURE_FROM = ("literals", "final")


def sparsity_terms(weight: torch.Tensor) -> torch.Tensor:
    """Madsen & Johansen's ``min(|W|, |1 - |W||)``: 0 exactly at -1, 0 and 1."""
    return torch.minimum(weight.abs(), (1 - weight.abs()).abs())


def gain_at(knots: Sequence[tuple[int, float]], step: int) -> float:
    """Piecewise-linear interpolation of ``[(step, gain), ...]`` (steps increasing), constant outside."""
    if step <= knots[0][0]:
        return knots[0][1]
    for (s0, g0), (s1, g1) in zip(knots, knots[1:], strict=False):
        if step < s1:
            return g0 + (g1 - g0) * (step - s0) / (s1 - s0)
    return knots[-1][1]


class ConfiguredUnitModel(ArithmeticModel):
    """An LSTM configures an arithmetic unit per program; the unit computes the answer (Trask et al. §4.4).

    ``forward(tokens, lengths, numbers, literals) -> answer (N,)``. A *template* unit
    ``build_unit(unit, num_literals, 1)`` fixes the names, shapes and initial values of the parameters; its
    own parameters are never trained. The hypernetwork outputs every raw parameter, times a gain (so that
    saturating values such as ``W_hat ~ 10`` are a short walk for the optimiser): ``hyper_gain``, or in
    training the ``hyper_gain_schedule`` value of the step (:meth:`on_train_step`), and ``eval_gain`` in
    eval mode (:meth:`gain`). Its weights and bias are divided by ``hyper_gain`` at initialisation, so at
    gain ``hyper_gain`` each sample's unit starts near the template's initial unit:

    * ``configure_from="literals"`` (default): the controller is bidirectional; the parameters that belong to
      input ``i`` (index ``i`` of the last axis of every parameter whose last axis has ``num_literals``
      entries, e.g. column ``i`` of NALU's ``W_hat, M_hat, G``) come from one linear layer applied to the
      controller's output at the ``i``-th literal (absent slots: the layer's bias); the other parameters
      (e.g. a scalar gate) from a linear layer of both directions' final outputs.
    * ``configure_from="final"``: one linear layer maps the (forward) controller's output after the last
      token to all parameters.

    ``regularizer()`` and ``sparsity_error()`` apply Madsen & Johansen's sparsity measure to the effective
    weights (``unit.effective_weights()``) that the last forward pass configured, over slots holding a
    literal; ``project_()`` does nothing (the unit's weight box is the unit's own ``forward`` clamp, if any).
    """

    def __init__(
        self,
        *,
        unit: str,
        unit_options: dict[str, Any] | None = None,
        num_literals: int,
        controller: str = "lstm",
        controller_inputs: str = "relative",
        configure_from: str = "literals",
        embedding_size: int = 32,
        hidden_size: int = 64,
        value_scale: float = 100.0,
        value_gain: float = 5.0,
        hyper_gain: float = 10.0,
        hyper_gain_schedule: Sequence[Sequence[float]] | None = None,
        eval_gain: float | None = None,
    ) -> None:
        super().__init__()
        if configure_from not in CONFIGURE_FROM:
            raise ValueError(f"configure_from={configure_from!r}; choose one of {', '.join(CONFIGURE_FROM)}")
        self.num_literals = num_literals
        self.value_scale = value_scale
        self.hyper_gain = hyper_gain
        self.gain_knots = [(int(step), float(gain)) for step, gain in hyper_gain_schedule or []]
        self.eval_gain = eval_gain
        # the gain in use (checkpointed, so a checkpoint evaluates with the gain it was validated with)
        initial_gain = self.gain_knots[0][1] if self.gain_knots else hyper_gain
        self.register_buffer("current_gain", torch.tensor(initial_gain))
        self.reader = SequenceReader(
            controller,
            controller_inputs,
            embedding_size=embedding_size,
            hidden_size=hidden_size,
            value_scale=value_scale,
            value_gain=value_gain,
            bidirectional=configure_from == "literals",
        )
        self.template = build_unit(unit, num_literals, 1, **(unit_options or {})).requires_grad_(False)
        initial = {name: p.detach() for name, p in self.template.named_parameters()}
        self.shapes = {name: tuple(p.shape) for name, p in initial.items()}
        per_literal = configure_from == "literals"
        self.column_names = [n for n, s in self.shapes.items() if per_literal and s[-1] == num_literals]
        self.global_names = [n for n in self.shapes if n not in self.column_names]
        self.global_head = self._head([initial[n].flatten() for n in self.global_names])
        # one head shared by the literal slots: it starts at the template's initial values averaged over slots
        self.column_head = self._head(
            [initial[n].reshape(-1, num_literals).mean(1) for n in self.column_names]
        )
        self.use_vmap = supports_vmap(self.template)
        self._last: tuple[dict[str, torch.Tensor], torch.Tensor] | None = None

    def _head(self, initial: list[torch.Tensor]) -> nn.Linear | None:
        """A linear layer of the controller outputs; times ``hyper_gain`` it starts near ``initial``."""
        if not initial:
            return None
        bias = torch.cat(initial)
        head = nn.Linear(self.reader.output_size, bias.numel())
        with torch.no_grad():
            head.weight.div_(self.hyper_gain)
            head.bias.copy_(bias / self.hyper_gain)
        return head

    def on_train_step(self, step: int) -> None:
        """Sets the training gain of ``hyper_gain_schedule`` at ``step`` (piecewise linear between knots).

        A small gain early keeps the configured weights off the flat tails of tanh/sigmoid while the
        controller learns which sign each literal takes (with a constant gain of 10, one seed of three
        locked a wrong sign and ignored the ``-`` before a literal).
        """
        if self.gain_knots:
            self.current_gain.fill_(gain_at(self.gain_knots, step))

    def gain(self) -> torch.Tensor | float:
        """The gain of the hypernetwork's outputs: ``eval_gain`` (if set) in eval mode, else the training
        gain. A larger gain at evaluation sharpens every configured weight towards its saturated value
        (tanh, sigmoid -> -1, 0, 1) without moving any decision: the sign of each pre-activation is kept.
        4-digit literals need weights within ~1e-4 of exact, which training on 2-digit programs, where 1e-2
        is enough, does not ask for."""
        if self.eval_gain is not None and not self.training:
            return self.eval_gain
        return self.current_gain

    def configure(self, tokens, lengths, numbers) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Each sample's unit parameters ``{name: (N, *shape)}`` and the (N, num_literals) slot mask."""
        outputs, summary = self.reader(tokens, lengths, numbers)
        positions, present = literal_positions(tokens, self.num_literals)
        params: dict[str, torch.Tensor] = {}
        if self.global_head is not None:
            flat = self.gain() * self.global_head(summary)
            sizes = [math.prod(self.shapes[n]) for n in self.global_names]
            for name, chunk in zip(self.global_names, flat.split(sizes, dim=-1), strict=True):
                params[name] = chunk.reshape(-1, *self.shapes[name])
        if self.column_head is not None:
            at_literals = outputs.gather(1, positions.unsqueeze(-1).expand(-1, -1, outputs.shape[-1]))
            columns = self.gain() * self.column_head(at_literals * present.unsqueeze(-1))  # (N, K, C)
            sizes = [math.prod(self.shapes[n][:-1]) for n in self.column_names]
            for name, chunk in zip(self.column_names, columns.split(sizes, dim=-1), strict=True):
                shape = self.shapes[name]
                params[name] = chunk.reshape(*chunk.shape[:2], *shape[:-1]).movedim(1, -1)
        return params, present

    def forward(self, tokens, lengths, numbers, literals) -> torch.Tensor:
        params, present = self.configure(tokens, lengths, numbers)
        self._last = (params, present)
        unit_output = apply_per_sample(self.template, params, literals / self.value_scale, vmap=self.use_vmap)
        return self.value_scale * unit_output.squeeze(-1)

    def _sparsity(self) -> list[torch.Tensor]:
        """``min(|W|, |1 - |W||)`` of every configured effective weight of the last forward pass, (N, out, K),
        zero on slots without a literal."""
        if self._last is None:
            return []
        params, present = self._last
        weights = effective_weights_per_sample(self.template, params).values()
        return [sparsity_terms(w) * present.unsqueeze(1) for w in weights if w.shape[-1] == self.num_literals]

    def regularizer(self) -> torch.Tensor:
        """Mean of :func:`sparsity_terms` over the last forward pass's configured weights (Madsen & Johansen's
        ``R_sparse``); pushes every configured weight to -1, 0 or 1."""
        terms = self._sparsity()
        if not terms:
            return torch.zeros(())
        present = self._last[1]
        count = present.sum().clamp_min(1) * sum(t.shape[1] for t in terms)
        return sum(t.sum() for t in terms) / count

    @torch.no_grad()
    def sparsity_error(self) -> torch.Tensor:
        """Madsen & Johansen's sparsity error (max of :func:`sparsity_terms`) over the last forward pass."""
        terms = self._sparsity()
        return torch.stack([t.max() for t in terms]).max() if terms else torch.zeros(())

    @torch.no_grad()
    def project_(self) -> None:
        """Nothing to project: the configured parameters are outputs, not trained weights."""


class DirectRegressionModel(ArithmeticModel):
    """Baseline: a recurrent cell reads the program; ``value_scale * readout(last output)`` is the answer."""

    def __init__(
        self,
        *,
        cell: str,
        readout: str = "linear",
        readout_options: dict[str, Any] | None = None,
        embedding_size: int = 32,
        hidden_size: int = 64,
        value_scale: float = 100.0,
        value_gain: float = 5.0,
    ) -> None:
        super().__init__()
        self.value_scale = value_scale
        self.reader = SequenceReader(
            cell,
            "both",
            embedding_size=embedding_size,
            hidden_size=hidden_size,
            value_scale=value_scale,
            value_gain=value_gain,
        )
        self.readout = build_unit(readout, hidden_size, 1, **(readout_options or {}))

    def forward(self, tokens, lengths, numbers, literals) -> torch.Tensor:
        _, summary = self.reader(tokens, lengths, numbers)
        return self.readout(summary).squeeze(-1) * self.value_scale
