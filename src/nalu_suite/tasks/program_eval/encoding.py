"""Programs as tensors for program evaluation (Trask et al. 2018 §4.4).

:func:`encode_programs` turns generated programs into token ids, the literal value at each ``<num>`` step,
the literals in order and the target; :func:`number_features` gives the value channels a reader sees
(``scaled``, ``relative`` or ``both``: :data:`CONTROLLER_INPUTS`); :func:`literal_positions` finds the step
of every literal.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nalu_suite.tasks.program_eval.programs import NUMBER, TOKEN_IDS, Program, tokenize

#: The value channels a reader can see (:func:`number_features`).
CONTROLLER_INPUTS = ("relative", "scaled", "both")


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
