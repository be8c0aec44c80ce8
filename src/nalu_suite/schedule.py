"""What changes with the training step, for both engines (Lightning and replicas).

* ``regularizer_weight``: λ(step) ramps linearly from 0 at ``regularizer.start`` to ``regularizer.weight`` at
  ``regularizer.end`` (Madsen & Johansen 2020 ramp their sparsity regulariser the same way, from 10^6
  to 2·10^6 iterations).
* ``solved_at``: the first validation step whose solved metric is below the success threshold
  (Madsen & Johansen's "solved at iteration" column).
"""

from __future__ import annotations

import math
from typing import Any

#: the ``regularizer`` config when a run has none: no regulariser
NO_REGULARIZER = {"weight": 0.0, "start": 0, "end": 0}


def regularizer_weight(reg: dict[str, Any], step: int) -> float:
    """λ(step) of the ``regularizer`` config ``{weight, start, end}``."""
    weight, start, end = float(reg["weight"]), int(reg["start"]), int(reg["end"])
    if weight == 0.0:
        return 0.0
    if end <= start:
        return weight if step >= start else 0.0
    return weight * min(1.0, max(0.0, (step - start) / (end - start)))


def update_solved_at(
    solved_at: int | None, value: float | None, threshold: float | None, step: int
) -> int | None:
    """``solved_at`` after a validation at ``step`` that measured ``value``: set once, when ``value`` first
    falls below ``threshold``; unchanged where it is set already or nothing is watched."""
    if solved_at is not None or value is None or threshold is None:
        return solved_at
    return step if math.isfinite(value) and value < threshold else None
