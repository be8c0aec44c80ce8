"""Reading a program with a recurrent cell (Trask et al. 2018 §4.4).

:class:`SequenceReader` embeds the tokens, appends the value channels and runs a cell (optionally both
ways) over the program; it is the controller of the configured-unit model and the body of the direct
regression baselines. :class:`UGRNNCell` (Collins et al. 2017) joins the registry's cells as ``ugrnn``.
"""

from __future__ import annotations

import torch
from torch import nn

from nalu_suite.tasks.program_eval.encoding import number_features
from nalu_suite.tasks.program_eval.programs import PAD, TOKEN_IDS, VOCABULARY
from nalu_suite.units.cells import CLASSIC_CELLS, RecurrentCell, build_cell, run_cell

#: Cells that make a direct-regression baseline when named as ``unit.first`` (and may be the controller).
RECURRENT_CELLS = (*CLASSIC_CELLS, "ugrnn")


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
