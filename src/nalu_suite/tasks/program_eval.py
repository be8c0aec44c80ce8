"""Program evaluation (Trask et al. 2018 §4.4, after Zaremba & Sutskever's "Learning to Execute").

    python train.py task=program_eval task.kind=addition      # print((A+B))
    python train.py task=program_eval task.kind=programs      # chained +, -, variables, if-statements
    python train.py task=program_eval unit=lstm               # baseline: an LSTM regresses the answer

Data (``tasks/programs.py``): programs are generated as Python source; the target is what Python prints.
Training and validation literals have ``train_digits`` = 2 digits, uniform in [0, 100); the test split
``test/d{k}`` uses ``k``-digit literals (every literal has exactly ``k`` digits when ``k != train_digits``, so
the 3- and 4-digit tests lie entirely outside the training range).

What a model sees, one time step per token: structure tokens (``print``, ``(``, ``+``, ``if``, variable names,
newline, indentation...) are embedded; a literal is the token ``<num>`` with its value beside it as whole
numbers (the paper's choice, not character by character), in two channels:

* ``scaled``: ``value / value_scale`` (``value_scale`` = 100, so 2-digit literals land in [0, 1));
* ``relative``: ``value / max literal of the program``: the same distribution at every digit length.

Both channels are multiplied by ``value_gain`` (5) before they join the 32-dimensional embedding, so that
they are not drowned by it at initialisation.

Models (chosen by the ``unit`` config):

* **Configured unit**, the paper's model (``unit.first`` is not a recurrent cell: ``unit=nac``,
  ``unit=nalu``, ``unit=nau``...): a ``controller`` LSTM reads the program, with the ``relative`` channel
  only by default (``controller_inputs``), so its view of a program does not depend on the digit length. A
  hypernetwork maps its outputs to *all* raw parameters of a ``unit.second`` unit with one output and
  ``max_literals`` inputs (for NALU: ``W_hat, M_hat, G``), see :class:`ConfiguredUnitModel`. The per-program
  unit is applied (``torch.func.functional_call`` under ``vmap``) to the program's literals, in order of
  appearance, zero-padded to ``max_literals`` and divided by ``value_scale``; its output times ``value_scale``
  is the answer. ``unit.first`` is not used.
* **Direct regression** baselines (``unit.first`` a recurrent cell: ``unit=lstm``, ``unit=gru``,
  ``unit=rnn_tanh``, or ``unit=lstm unit.first=ugrnn unit.name=ugrnn`` for Collins et al.'s UGRNN): the cell
  reads the program with both value channels; ``value_scale`` times a ``unit.second`` readout (linear) of its
  last output is the answer.

``task.candidates`` (default 2) such models train side by side, each on its own loss, and the one with the
lower running loss on the (always fresh) training programs answers at validation and test
(``tasks/candidates.py``): restarts in one run.

Loss: MSE of ``answer / value_scale``, plus the ``regularizer`` config's ramped weight times the model's
regulariser (for configured units: Madsen & Johansen's sparsity regulariser on the configured weights).
Metrics per split: ``exact`` (the rounded answer equals the target), ``digit_acc`` (:class:`ProgramMetric`),
``mae``, and ``selection`` = ``1 - exact + 1e-6 mae``, which picks the checkpoint that is tested (the fewest
wrong answers on the 2-digit validation set; ties go to the lower MAE).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nalu_suite.errors import ConfigError, check_choice
from nalu_suite.metrics import ErrorStats
from nalu_suite.rng import derive_seed
from nalu_suite.tasks.base import ArithmeticModel, Task
from nalu_suite.tasks.programs import (
    KINDS,
    NUMBER,
    OPERATIONS,
    PAD,
    TOKEN_IDS,
    VOCABULARY,
    Program,
    ProgramGenerator,
    max_literals,
    tokenize,
)
from nalu_suite.units import UNIT_NAMES, build_unit
from nalu_suite.units.cells import CLASSIC_CELLS, RecurrentCell, build_cell, run_cell

CONTROLLER_INPUTS = ("relative", "scaled", "both")
CONFIGURE_FROM = ("literals", "final")
#: Cells that make a direct-regression baseline when named as ``unit.first`` (and may be the controller).
RECURRENT_CELLS = (*CLASSIC_CELLS, "ugrnn")


# --- encoding --------------------------------------------------------------------------------------
def encode_programs(programs: Sequence[Program], num_literals: int) -> tuple[torch.Tensor, ...]:
    """``(tokens, lengths, numbers, literals, target)`` for a list of programs.

    ``tokens`` (N, T) are vocabulary ids right-padded with ``<pad>`` (id 0); ``numbers`` (N, T) hold each
    literal's value at its ``<num>`` step and 0 elsewhere; ``literals`` (N, ``num_literals``) the values in
    order of appearance, zero-padded; ``target`` (N,) what the program prints.
    """
    rows = [tokenize(p.source) for p in programs]
    width = max(len(tokens) for tokens, _ in rows)
    tokens = torch.zeros(len(programs), width, dtype=torch.long)
    numbers = torch.zeros(len(programs), width)
    literals = torch.zeros(len(programs), num_literals)
    for i, ((toks, values), program) in enumerate(zip(rows, programs, strict=True)):
        if len(program.literals) > num_literals:
            raise ValueError(f"program has {len(program.literals)} literals, more than {num_literals}")
        tokens[i, : len(toks)] = torch.tensor([TOKEN_IDS[t] for t in toks])
        numbers[i, : len(values)] = torch.tensor([float(v or 0) for v in values])
        literals[i, : len(program.literals)] = torch.tensor(program.literals, dtype=torch.float32)
    lengths = torch.tensor([len(toks) for toks, _ in rows])
    target = torch.tensor([float(p.target) for p in programs])
    return tokens, lengths, numbers, literals, target


def number_features(numbers: torch.Tensor, value_scale: float, channels: str) -> torch.Tensor:
    """The value channels of every step, (N, T, C): ``scaled`` = v / value_scale, ``relative`` = v / max|v|.

    ``channels`` is ``"scaled"``, ``"relative"`` or ``"both"`` (scaled first). Steps without a literal are 0.
    """
    parts = []
    if channels in ("scaled", "both"):
        parts.append(numbers / value_scale)
    if channels in ("relative", "both"):
        peak = numbers.abs().amax(dim=1, keepdim=True)
        parts.append(torch.where(peak > 0, numbers / peak.clamp_min(1e-30), torch.zeros_like(numbers)))
    return torch.stack(parts, dim=-1)


def literal_positions(tokens: torch.Tensor, num_literals: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(positions, present)``, both (N, num_literals): the step of each row's i-th ``<num>`` token, and
    whether the row has an i-th literal (absent slots have position 0)."""
    is_number = tokens == TOKEN_IDS[NUMBER]
    rank = is_number.long().cumsum(dim=1) - 1
    rows, steps = is_number.nonzero(as_tuple=True)
    positions = torch.zeros(tokens.shape[0], num_literals, dtype=torch.long, device=tokens.device)
    present = torch.zeros(tokens.shape[0], num_literals, dtype=torch.bool, device=tokens.device)
    positions[rows, rank[rows, steps]] = steps
    present[rows, rank[rows, steps]] = True
    return positions, present


# --- reading the program ----------------------------------------------------------------------------
class UGRNNCell(RecurrentCell):
    """Update-gate RNN (Collins, Sohl-Dickstein & Sussillo 2017), a baseline of Trask et al. §4.4.

    ``c = tanh(W_c [x, h] + b_c)``, ``g = sigmoid(W_g [x, h] + b_g)``, ``h' = g * h + (1 - g) * c``.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.candidate = nn.Linear(input_size + hidden_size, hidden_size)
        self.gate = nn.Linear(input_size + hidden_size, hidden_size)

    def forward(self, x_t: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xh = torch.cat([x_t, state], dim=-1)
        g = torch.sigmoid(self.gate(xh))
        h = g * state + (1 - g) * torch.tanh(self.candidate(xh))
        return h, h


def make_cell(name: str, input_size: int, hidden_size: int) -> RecurrentCell:
    """``ugrnn`` or any cell of the registry (``nalu_suite.units.cells.build_cell``)."""
    if name == "ugrnn":
        return UGRNNCell(input_size, hidden_size)
    return build_cell(name, input_size, hidden_size)


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row of ``x`` (N, T, ...) within its first ``lengths[i]`` steps; padding stays in place."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    index = torch.where(steps < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - steps, steps)
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


class SequenceReader(nn.Module):
    """Embeds the tokens, appends ``value_gain`` times the value ``channels``, runs a cell over the program.

    Returns ``(outputs, summary)``: the outputs at every step, (N, T, D), and the output after the last
    token, (N, D). With ``bidirectional=True`` a second cell reads the program backwards; outputs are both
    directions concatenated (D = 2 hidden) and the summary is both directions' final outputs.
    """

    def __init__(
        self,
        cell: str,
        channels: str,
        *,
        embedding_size: int,
        hidden_size: int,
        value_scale: float,
        value_gain: float = 5.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.value_scale = value_scale
        self.value_gain = value_gain
        self.embedding = nn.Embedding(len(VOCABULARY), embedding_size, padding_idx=TOKEN_IDS[PAD])
        input_size = embedding_size + (2 if channels == "both" else 1)
        self.cell = make_cell(cell, input_size, hidden_size)
        self.backward_cell = make_cell(cell, input_size, hidden_size) if bidirectional else None
        self.output_size = hidden_size * (2 if bidirectional else 1)

    def forward(
        self, tokens: torch.Tensor, lengths: torch.Tensor, numbers: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        values = self.value_gain * number_features(numbers, self.value_scale, self.channels)
        x = torch.cat([self.embedding(tokens), values], dim=-1)
        outputs, _ = run_cell(self.cell, x)
        summary = outputs[torch.arange(tokens.shape[0], device=tokens.device), lengths - 1]
        if self.backward_cell is None:
            return outputs, summary
        backward, _ = run_cell(self.backward_cell, reverse_within_length(x, lengths))
        backward = reverse_within_length(backward, lengths)
        return torch.cat([outputs, backward], dim=-1), torch.cat([summary, backward[:, 0]], dim=-1)


# --- a unit per sample ------------------------------------------------------------------------------
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


# --- metric ----------------------------------------------------------------------------------------
#: Right-aligned character positions compared; covers every integer below 2**53 and its sign.
MAX_CHARS = 17


def _characters(n: torch.Tensor) -> torch.Tensor:
    """Characters of ``str(n)`` right-aligned, (N, MAX_CHARS): digits 0-9, 10 for '-', -1 for none."""
    a = n.abs()
    positions = torch.arange(MAX_CHARS, device=n.device)
    powers = torch.tensor([10**j for j in range(MAX_CHARS)], device=n.device)
    digits = torch.div(a.unsqueeze(-1), powers, rounding_mode="floor") % 10
    num_digits = 1 + (a.unsqueeze(-1) >= powers[1:]).sum(-1)
    chars = torch.where(positions < num_digits.unsqueeze(-1), digits, torch.full_like(digits, -1))
    sign = (positions == num_digits.unsqueeze(-1)) & (n < 0).unsqueeze(-1)
    return torch.where(sign, torch.full_like(chars, 10), chars)


def digit_matches(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: characters of ``str(round(pred))`` equal to those of ``str(target)``; ``len(str(target))``.

    Both strings are right-aligned and compared position by position over the target's length; the sign
    '-' counts as a character. A prediction that is not finite or not below 2**53 in magnitude matches
    nothing.
    """
    rounded = pred.detach().double().round()
    valid = torch.isfinite(rounded) & (rounded.abs() < 2.0**53)
    p = _characters(torch.where(valid, rounded, torch.zeros_like(rounded)).long())
    t = _characters(target.detach().double().round().long())
    in_target = t >= 0
    matches = ((p == t) & in_target & valid.unsqueeze(-1)).sum(-1)
    return matches, in_target.sum(-1)


class ProgramMetric(ErrorStats):
    """``ErrorStats`` plus ``digit_acc``: matching characters over target characters, pooled over samples.

    This is Zaremba & Sutskever's per-character accuracy for a regressed answer: ``round(pred)`` and the
    target are written in decimal, right-aligned, and compared position by position
    (:func:`digit_matches`); ``digit_acc = sum(matches) / sum(len(str(target)))``, a fraction in [0, 1].
    """

    def __init__(self) -> None:
        super().__init__()
        for name in ("digit_matches", "digit_total"):
            self.add_state(name, default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        super().update(pred, target)
        matches, total = digit_matches(pred.reshape(-1), target.reshape(-1))
        self.digit_matches += matches.sum()
        self.digit_total += total.sum()

    def compute(self) -> dict[str, torch.Tensor]:
        return super().compute() | {"digit_acc": self.digit_matches / self.digit_total.clamp_min(1)}


# --- task ------------------------------------------------------------------------------------------
def _int_option(cfg: dict, key: str, low: int = 1, high: int | None = None) -> int:
    value = cfg.get(key)
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"task.{key}={value!r} must be an integer {bound}")
    return value


def _positive(cfg: dict, key: str, default: float) -> float:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"task.{key}={value!r} must be a positive number")
    return float(value)


def gain_schedule(value: Any) -> list[tuple[int, float]]:
    """``task.hyper_gain_schedule`` checked: null/empty, or ``[[step, gain], ...]`` with increasing integer
    steps >= 0 and positive gains."""
    if not value:
        return []
    knots = []
    message = f"task.hyper_gain_schedule={value!r} must be a list of [step, gain] pairs"
    for knot in value:
        if not isinstance(knot, (list, tuple)) or len(knot) != 2:
            raise ConfigError(message)
        step, gain = knot
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ConfigError(f"{message}: step {step!r} is not an integer >= 0")
        if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not gain > 0:
            raise ConfigError(f"{message}: gain {gain!r} is not a positive number")
        if knots and step <= knots[-1][0]:
            raise ConfigError(f"{message}: steps must increase ({knots[-1][0]} then {step})")
        knots.append((step, float(gain)))
    return knots


class ProgramEvalTask(Task):
    name = "program_eval"
    val_splits = ("val",)
    #: the checkpoint with the fewest wrong answers on the 2-digit validation set is tested; ties (e.g. all
    #: right) go to the lower MAE: ``selection = (1 - exact) + 1e-6 * mae``
    monitor = "val/selection"

    def __init__(self, task: dict[str, Any], unit: dict[str, Any], seed: int) -> None:
        super().__init__(task, unit, seed)
        check_choice("task.kind", task.get("kind"), KINDS)
        self.kind = task["kind"]
        self.train_digits = _int_option(task, "train_digits", 1, 15)
        test_digits = task.get("test_digits")
        if not isinstance(test_digits, (list, tuple)) or not test_digits:
            raise ConfigError(f"task.test_digits={test_digits!r} must be a non-empty list of digit counts")
        for k in test_digits:
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 15:
                raise ConfigError(f"task.test_digits entry {k!r} must be an integer in [1, 15]")
        self.test_digits = tuple(test_digits)
        self.test_splits = tuple(f"test/d{k}" for k in self.test_digits)
        self.nesting = _int_option(task, "nesting")
        self.operations = tuple(task.get("operations") or OPERATIONS)
        self.make_generator(self.train_digits)  # validates nesting and operations
        self.num_literals = max_literals(self.kind, self.nesting)
        self.value_scale = _positive(task, "value_scale", 100.0)
        self.value_gain = _positive(task, "value_gain", 5.0)
        self.hyper_gain = _positive(task, "hyper_gain", 10.0)
        self.hyper_gain_schedule = gain_schedule(task.get("hyper_gain_schedule"))
        self.eval_gain = None if task.get("eval_gain") is None else _positive(task, "eval_gain", 1.0)
        check_choice("task.controller", task.get("controller", "lstm"), RECURRENT_CELLS)
        check_choice("task.controller_inputs", task.get("controller_inputs", "relative"), CONTROLLER_INPUTS)
        check_choice("task.configure_from", task.get("configure_from", "literals"), CONFIGURE_FROM)
        for key in ("hidden_size", "embedding_size", "eval_size", "figure_size", "chunk"):
            _int_option(task, key)
        self.candidates = _int_option({"candidates": 1} | task, "candidates")
        check_choice("unit.first", unit.get("first"), (*RECURRENT_CELLS, *UNIT_NAMES))
        check_choice("unit.second", unit.get("second"), UNIT_NAMES)
        self.is_baseline = unit["first"] in RECURRENT_CELLS

    # --- data ------------------------------------------------------------------------------------
    def make_generator(self, digits: int) -> ProgramGenerator:
        """Literals in [0, 10**digits) at ``train_digits``; with exactly ``digits`` digits otherwise."""
        exact = digits != self.train_digits
        return ProgramGenerator(self.kind, digits, self.nesting, self.operations, exact_digits=exact)

    def programs(self, digits: int, n: int, stream: str) -> list[Program]:
        """``n`` programs of the named ``stream`` of this run's seed (``"val"``, ``"test/d4"``, ...)."""
        rng = random.Random(derive_seed(self.seed, "programs", stream, digits))
        return self.make_generator(digits).samples(rng, n)

    def eval_set(self, split: str) -> tuple[torch.Tensor, ...]:
        digits = self.train_digits if split == "val" else int(split.rsplit("/d", 1)[1])
        return encode_programs(self.programs(digits, int(self.cfg["eval_size"]), split), self.num_literals)

    def build_datamodule(self, data_dir: str | Path, batch_size: int):
        from nalu_suite.data import BatchStream, TensorDataModule

        generator = self.make_generator(self.train_digits)

        def draw(g: torch.Generator, n: int) -> tuple[torch.Tensor, ...]:
            rng = random.Random(g.initial_seed())
            return encode_programs(generator.samples(rng, n), self.num_literals)

        return TensorDataModule(
            BatchStream(draw, batch_size, self.seed, chunk=int(self.cfg["chunk"])),
            val=[self.eval_set(s) for s in self.val_splits],
            test=[self.eval_set(s) for s in self.test_splits],
            batch_size=batch_size,
            eval_batch_size=1000,
        )

    def preview(self, n: int) -> list[dict[str, Any]]:
        """Programs with ``task.preview_digits``-digit literals (default ``train_digits``): the source as
        ``text``, the tokens the model reads (literals by value), ``inputs`` (the literals), ``target``."""
        digits = int(self.cfg.get("preview_digits") or self.train_digits)
        rows = []
        for program in self.programs(digits, n, "preview"):
            tokens, values = tokenize(program.source)
            rows.append(
                {
                    "text": program.source,
                    "tokens": [
                        t if t != NUMBER else f"<num:{v}>" for t, v in zip(tokens, values, strict=True)
                    ],
                    "inputs": list(program.literals),
                    "coefficients": list(program.coefficients),
                    "target": program.target,
                }
            )
        return rows

    # --- model and steps -------------------------------------------------------------------------
    def build_model(self) -> ArithmeticModel:
        """The configured unit or baseline; ``task.candidates`` > 1 of them side by side
        (:class:`~nalu_suite.tasks.candidates.Candidates`: restarts chosen on fresh 2-digit programs)."""
        if self.candidates == 1:
            return self.build_one_model()
        from nalu_suite.tasks.candidates import Candidates

        return Candidates(self.build_one_model, self.candidates)

    def build_one_model(self) -> ArithmeticModel:
        sizes = {
            "embedding_size": int(self.cfg["embedding_size"]),
            "hidden_size": int(self.cfg["hidden_size"]),
            "value_scale": self.value_scale,
            "value_gain": self.value_gain,
        }
        try:
            if self.is_baseline:
                return DirectRegressionModel(
                    cell=self.unit["first"],
                    readout=self.unit["second"],
                    readout_options=self.unit.get("second_options") or {},
                    **sizes,
                )
            return ConfiguredUnitModel(
                unit=self.unit["second"],
                unit_options=self.unit.get("second_options") or {},
                num_literals=self.num_literals,
                controller=self.cfg.get("controller", "lstm"),
                controller_inputs=self.cfg.get("controller_inputs", "relative"),
                configure_from=self.cfg.get("configure_from", "literals"),
                hyper_gain=self.hyper_gain,
                hyper_gain_schedule=self.hyper_gain_schedule,
                eval_gain=self.eval_gain,
                **sizes,
            )
        except (TypeError, ValueError) as err:
            raise ConfigError(str(err)) from err

    def predict(self, model: nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, lengths, numbers, literals, target = batch
        return model(tokens, lengths, numbers, literals), target

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        """MSE of ``answer / value_scale``; with candidates, the sum of the members' MSEs (each member's
        gradient is its own), which are also handed to ``model.observe`` to pick the answering member."""
        pred, target = self.predict(model, batch)
        scaled = target / self.value_scale
        if pred.dim() == 1:
            return torch.nn.functional.mse_loss(pred / self.value_scale, scaled)
        per_member = torch.nn.functional.mse_loss(
            pred / self.value_scale, scaled.expand_as(pred), reduction="none"
        ).mean(-1)
        model.observe(per_member)
        return per_member.sum()

    # --- metrics and figures ---------------------------------------------------------------------
    def make_metric(self, split: str) -> ProgramMetric:
        return ProgramMetric()

    def finalize_metrics(self, split: str, values: dict[str, float]) -> dict[str, float]:
        exact, mae = values["exact"], values["mae"]
        return {
            "exact": exact,
            "digit_acc": values["digit_acc"],
            "mae": mae,
            "selection": 1 - exact + 1e-6 * mae,
        }

    @torch.no_grad()
    def accuracy_by_digits(
        self, model: nn.Module, digits: Sequence[int], n: int
    ) -> dict[int, dict[str, float]]:
        """``{k: {"exact", "digit_acc"}}`` of ``model`` on ``n`` fresh programs with ``k``-digit literals."""
        was_training = model.training
        model.eval()
        scores = {}
        for k in digits:
            metric = ProgramMetric()
            metric.update(
                *self.predict(model, encode_programs(self.programs(k, n, "figure"), self.num_literals))
            )
            values = metric.compute()
            scores[k] = {"exact": float(values["exact"]), "digit_acc": float(values["digit_acc"])}
        model.train(was_training)
        return scores

    def make_figures(self, model: nn.Module, run_dir: Path) -> list[Path]:
        """``accuracy_by_digits.png`` (and ``.json``): exact and digit accuracy for 1 .. max(test_digits) + 2
        digits per literal."""
        import json

        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        digits = list(range(1, max(self.test_digits) + 3))
        scores = self.accuracy_by_digits(model, digits, int(self.cfg["figure_size"]))
        run_dir = Path(run_dir)
        (run_dir / "accuracy_by_digits.json").write_text(json.dumps(scores, indent=2) + "\n")
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for metric, style in (("exact", "o-"), ("digit_acc", "s--")):
            ax.plot(digits, [scores[k][metric] for k in digits], style, label=metric)
        ax.axvspan(0.5, self.train_digits + 0.5, color="0.9", label="training range")
        ax.set(xlabel="digits per literal", ylabel="accuracy", ylim=(-0.02, 1.02), xticks=digits)
        ax.set_title(f"program_eval ({self.kind}), unit={self.unit.get('name')}", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = run_dir / "accuracy_by_digits.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return [path]
