"""The program-evaluation metric (Trask et al. 2018 §4.4, after Zaremba & Sutskever 2014).

:class:`ProgramMetric` adds ``digit_acc`` (:func:`digit_matches`: characters of the rounded answer equal to
the target's, right-aligned) to the shared error statistics (``exact``, ``mae``, ...).
"""

from __future__ import annotations

import torch

from nalu_suite.metrics import ErrorStats

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
