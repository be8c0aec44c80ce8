"""What changes with the training step, for both engines (Lightning and replicas).

* ``regularizer_weight``: λ(step) ramps linearly from 0 at ``regularizer.start`` to ``regularizer.weight`` at
  ``regularizer.end`` (Madsen & Johansen 2020 ramp their sparsity regulariser the same way, from 10^6
  to 2·10^6 iterations). With ``regularizer.growth`` set it is a staircase instead: from ``start`` on,
  λ is multiplied by ``growth`` every ``regularizer.every`` steps until it reaches ``weight`` at ``end``
  (Heim et al. 2020's schedule for the NPU's L1 weight β, as the Primer runs it: ×10 every 10k steps).
* ``regularizer_open``: with ``regularizer.gate`` set, the regulariser counts only while the latest
  validation value of ``task.monitor`` (the interpolation-validation MSE) is below it; closed before the
  first validation. The Primer gates iNALU's regulariser so ("interpolation error < 1").
* ``solved_at``: the first validation step whose solved metric is below the success threshold
  (Madsen & Johansen's "solved at iteration" column).
"""

from __future__ import annotations

import math
from typing import Any

from nalu_suite.errors import ConfigError, check_number, check_positive_int

#: the ``regularizer`` config when a run has none: no regulariser
NO_REGULARIZER = {"weight": 0.0, "start": 0, "end": 0}


def regularizer_weight(reg: dict[str, Any], step: int) -> float:
    """λ(step) of the ``regularizer`` config ``{weight, start, end[, growth, every]}``.

    Linear ramp (``growth`` unset or null): 0 before ``start``, ``weight`` from ``end`` on. Staircase
    (``growth`` set): 0 before ``start``, then ``weight / growth^n`` with ``n = (end - start) / every -
    floor((step - start) / every)`` factors still to come, ``weight`` from ``end`` on; e.g. ``weight=1e-5,
    start=0, end=20000, growth=10, every=10000``: 1e-7, 1e-6 from step 10k, 1e-5 from step 20k.
    """
    weight, start, end = float(reg["weight"]), int(reg["start"]), int(reg["end"])
    if weight == 0.0:
        return 0.0
    if reg.get("growth") is not None:
        if step < start:
            return 0.0
        to_come = (end - start) // int(reg["every"]) - (step - start) // int(reg["every"])
        return weight / float(reg["growth"]) ** to_come if to_come > 0 else weight
    if end <= start:
        return weight if step >= start else 0.0
    return weight * min(1.0, max(0.0, (step - start) / (end - start)))


def regularizer_open(reg: dict[str, Any], latest):
    """Whether the regulariser counts, given the ``latest`` validation value of ``task.monitor`` (None: no
    validation yet; a float, or a tensor with one value per replica, which gives a bool tensor): always
    without ``regularizer.gate``, else only while ``latest < gate`` (NaN: closed)."""
    gate = reg.get("gate")
    if gate is None:
        return True
    return latest is not None and latest < float(gate)


def check_regularizer_steps(reg: dict[str, Any]) -> None:
    """The staircase's keys (``regularizer.growth``, ``regularizer.every``): both or neither; ``growth`` a
    number > 1, ``every`` a positive number of steps that divides ``end - start`` (> 0)."""
    growth, every = reg.get("growth"), reg.get("every")
    if growth is None and every is None:
        return
    if growth is None:
        raise ConfigError(
            f"regularizer.every={every!r} needs regularizer.growth (the factor applied every that many "
            "steps); null: the linear ramp"
        )
    check_number("regularizer.growth (null: the linear ramp)", growth, 1, above=True)
    if every is None:
        raise ConfigError(
            f"regularizer.growth={growth!r} needs regularizer.every (steps between the factors)"
        )
    check_positive_int("regularizer.every (steps between the factors of regularizer.growth)", every)
    start, end = reg.get("start", 0), reg.get("end", 0)
    if end <= start or (end - start) % every:
        raise ConfigError(
            f"regularizer.growth: regularizer.end - regularizer.start = {end} - {start} must be a positive "
            f"multiple of regularizer.every={every} (the step where λ reaches regularizer.weight)"
        )


def update_solved_at(
    solved_at: int | None, value: float | None, threshold: float | None, step: int
) -> int | None:
    """``solved_at`` after a validation at ``step`` that measured ``value``: set once, when ``value`` first
    falls below ``threshold``; unchanged where it is set already or nothing is watched."""
    if solved_at is not None or value is None or threshold is None:
        return solved_at
    return step if math.isfinite(value) and value < threshold else None
