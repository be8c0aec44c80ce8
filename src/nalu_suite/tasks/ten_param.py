"""The NAU paper's 10-parameter task (Madsen & Johansen, ICLR 2020, "very simple function",
``paper/results/simple_mul.tex``): ``t = (x1 + x2) * (x1 + x2 + x3 + x4)``, ``x ~ U[1, 2]^4``,
extrapolation ``U[2, 6]^4``.

The static task with four inputs and fixed slices, ``a = x1 + x2`` and ``b = x1 + x2 + x3 + x4``, and
``op = mul``: the two-layer model ``unit.first`` (4 -> 2) then ``unit.second`` (2 -> 1) has 10 weights
for NAU -> NMU. Everything else (metrics, ε = 1e-5 success threshold, normalised error, whitening) is
``static_arith``'s. Published at 2·10^5 iterations over 100 seeds: NMU 94%, NALU 26%, NAC• 13%.
"""

from __future__ import annotations

from typing import Any

import torch

from nalu_suite.errors import ConfigError, check_choice
from nalu_suite.tasks.arithmetic import Subsets
from nalu_suite.tasks.static_arith import StaticArithTask

#: ``a = x[0:2]``, ``b = x[0:4]``
TEN_PARAM_SUBSETS = Subsets(a_start=0, a_stop=2, b_start=0, b_stop=4)


class TenParamTask(StaticArithTask):
    name = "ten_param"

    def __init__(self, task: dict[str, Any], unit: dict[str, Any], seed: int) -> None:
        check_choice("task.op (the 10-parameter task is a product)", task.get("op"), ("mul",))
        check_choice("task.input_size (the 10-parameter task has 4 inputs)", task.get("input_size"), (4,))
        step = task.get("second_step", 1.0)
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0 < step <= 1:
            raise ConfigError(f"task.second_step={step!r} must be a number in (0, 1]")
        super().__init__(task, unit, seed)
        self.subsets = TEN_PARAM_SUBSETS
        self.second_step = float(step)

    def input_whitening(self) -> dict[str, torch.Tensor]:
        """The static task's whitening for the first layer, and ``P = second_step * I`` for the second
        layer's ``W``: with whitened Adam (``optim.whiten_from``) its steps are ``second_step`` times
        Adam's. Two time scales: an NMU gate ``W_j`` goes to 0 ("ignore ``h_j``") whenever ``h_j < 1``
        shrinks the product, and at the start every ``h_j`` is near 0 (NAU init of mean 0) while the
        target is about 18; if a gate reaches 0 before the NAU has lifted its ``h_j`` above 1, neither
        receives a gradient again, and the model ends at ``t = x1 + x2 + x3 + x4`` (MSE ~159)."""
        whitening = super().input_whitening()
        if self.second_step != 1.0 and self.unit["second"] == "nmu":
            whitening["second.W"] = self.second_step * torch.eye(self.hidden_size)
        return whitening
