"""The MNIST sequence model (Trask et al. 2018 §4.2): a CNN soft digit per image, a recurrent core over them.

:class:`DigitSequenceModel` runs the CNN (slowed and averaged:
:class:`~nalu_suite.slow_averaged.SlowAveragedModule`) on every image, feeds the soft digits (or their
value) to ``unit.first`` as a recurrent cell and reads the final state out with ``unit.second``; in
evaluation it runs the CNN once per distinct image (:meth:`DigitSequenceModel.cached_digit_features`). See
the package docstring for the design.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nalu_suite.encoders import MnistCNN
from nalu_suite.errors import ConfigError
from nalu_suite.slow_averaged import SlowAveragedModule
from nalu_suite.tasks.base import ArithmeticModel
from nalu_suite.tasks.mnist.sequences import NUM_DIGITS
from nalu_suite.units import build_unit
from nalu_suite.units.cells import build_cell, run_cell

CORES = ("shared", "joint", "solved")
#: what the ``solved`` core (no learned arithmetic) does with the digit values over the sequence
SOLVED_OPS = ("sum", "prod")
DIGIT_VALUES = ("learned", "expectation", "regression")


class DigitSequenceModel(ArithmeticModel):
    """CNN soft digit per image -> recurrent core over the sequence -> output layer on the final state."""

    def __init__(
        self,
        *,
        unit: dict[str, Any],
        out_features: int,
        hidden_size: int,
        digit_value: str | None,
        cnn: str = "2018",
        cnn_dropout: float = 0.5,
        core: str = "shared",
        cnn_lr_scale: float = 1.0,
        cnn_warmup_steps: int = 0,
        cnn_average: float = 0.0,
        cumulative: bool = False,
        readout: bool = True,
        solved_op: str = "sum",
    ) -> None:
        super().__init__()
        scores = 1 if digit_value == "regression" else NUM_DIGITS
        self.cnn = SlowAveragedModule(
            MnistCNN(out_features=scores, variant=cnn, dropout=cnn_dropout), cnn_lr_scale, cnn_average
        )
        self.digit_value = digit_value
        if digit_value == "learned":
            self.value = nn.Linear(NUM_DIGITS, 1, bias=False)
        elif digit_value == "expectation":
            self.register_buffer("value_of_digit", torch.arange(NUM_DIGITS, dtype=torch.float32))
        if core not in CORES:
            raise ConfigError(f"task.core={core!r} is not valid; choose one of: {', '.join(CORES)}")
        self.core = core
        self.cumulative = bool(cumulative)
        if solved_op not in SOLVED_OPS:
            raise ConfigError(f"solved_op={solved_op!r} is not valid; choose one of: {', '.join(SOLVED_OPS)}")
        self.solved_op = solved_op
        channels = NUM_DIGITS if digit_value is None else 1
        cell_in, cell_out = (channels, out_features) if core == "joint" else (1, 1)
        if not readout and hidden_size != cell_out:
            raise ConfigError(
                f"task.hidden_size={hidden_size} must be {cell_out}: with no readout the state is the output"
            )
        # hidden_size is the whole state of the cell; the task scales it with the channels for `joint`
        try:
            self.cell = (
                None
                if core == "solved"
                else build_cell(unit["first"], cell_in, hidden_size, **(unit.get("first_options") or {}))
            )
            self.second = (
                build_unit(unit["second"], hidden_size, cell_out, **(unit.get("second_options") or {}))
                if readout and core != "solved"
                else nn.Identity()
            )
        except (TypeError, ValueError) as err:
            raise ConfigError(str(err)) from err
        self.cnn_warmup_steps = int(cnn_warmup_steps)
        self.register_buffer("train_steps", torch.zeros((), dtype=torch.long))  # training forward passes
        self._eval_round = 0
        self._cache: dict[str, Any] = {}

    # digit features
    def digit_features(self, images: torch.Tensor) -> torch.Tensor:
        """``(..., 28, 28)`` images -> ``(..., F)``: the soft digit (F = 10) or its value (F = 1)."""
        training = self.training and torch.is_grad_enabled()
        warming_up = training and int(self.train_steps) < self.cnn_warmup_steps
        with torch.set_grad_enabled(not warming_up and torch.is_grad_enabled()):
            scores = self.cnn(images)  # during warm-up the core learns on the untrained CNN's output
        if training:
            self.train_steps += 1
        if self.digit_value == "regression":
            return scores
        soft = torch.softmax(scores, dim=-1)
        if self.digit_value == "learned":
            return self.value(soft)
        if self.digit_value == "expectation":
            return (soft * self.value_of_digit).sum(dim=-1, keepdim=True)
        return soft

    def accumulate(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, T, C)`` per-image features -> ``(B, out)``: run the core, read out its final state.

        ``shared`` core: each of the ``C`` channels is its own length-``T`` sequence of numbers, run
        through the same 1-input cell and 1-output readout; ``joint``: one cell reads all ``C`` channels;
        ``solved``: no learned core, the exact running ``solved_op`` (sum or product) of each channel
        (Madsen & Johansen's "solved accumulator" reference model). ``cumulative``: the output after
        every step, ``(B, T * out)`` in time order, instead of the final one.
        """
        batch, length, channels = features.shape
        if self.core == "solved":
            running = features.cumprod(dim=1) if self.solved_op == "prod" else features.cumsum(dim=1)
            return running.reshape(batch, -1) if self.cumulative else running[:, -1]
        if self.core == "shared":
            features = features.transpose(1, 2).reshape(batch * channels, length, 1)
        outputs, _ = run_cell(self.cell, features)
        if not self.cumulative:
            return self.second(outputs[:, -1]).reshape(batch, -1)
        outputs = self.second(outputs)  # (B or B * C, T, out)
        if self.core == "shared":
            outputs = outputs.reshape(batch, channels, length).transpose(1, 2)
        return outputs.reshape(batch, -1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The plain loop: ``(B, T, 28, 28)`` images -> ``(B, out)``, one CNN pass per image."""
        return self.accumulate(self.digit_features(images))

    # evaluation cache
    def train(self, mode: bool = True):
        if not mode:
            self._eval_round += 1  # a new evaluation: features computed before may be stale
        return super().train(mode)

    def _cache_key(self, table: torch.Tensor, device: torch.device) -> tuple:
        versions = tuple(t._version for t in (*self.parameters(), *self.buffers()))
        return (
            id(table), table.shape, table.data_ptr(), device, self._eval_round, versions,
            torch.is_inference_mode_enabled(),
        )  # fmt: skip

    @torch.no_grad()
    def cached_digit_features(
        self, table: torch.Tensor, indices: torch.Tensor, chunk: int = 4096
    ) -> torch.Tensor:
        """``digit_features(table[indices])``, with the CNN run only on images new since the weights changed.

        For evaluation only (the model in eval mode): the cache is dropped whenever the model is switched to
        eval mode again or any parameter is modified in place (an optimiser step, ``load_state_dict``).
        """
        if self.training:
            raise RuntimeError("cached_digit_features is for evaluation; call model.eval() first")
        device = indices.device
        key = self._cache_key(table, device)
        if self._cache.get("key") != key:
            self._cache = {"key": key, "features": None, "have": torch.zeros(len(table), dtype=torch.bool)}
        have = self._cache["have"]
        wanted = torch.unique(indices.cpu())
        missing = wanted[~have[wanted]]
        for start in range(0, len(missing), chunk):
            ids = missing[start : start + chunk]
            feats = self.digit_features(table[ids.to(table.device)].to(device))
            if self._cache["features"] is None:
                self._cache["features"] = feats.new_zeros(len(table), feats.shape[-1])
            self._cache["features"][ids.to(device)] = feats
            have[ids] = True
        return self._cache["features"][indices]
