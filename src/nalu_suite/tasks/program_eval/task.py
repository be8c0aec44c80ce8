"""The program-evaluation task (Trask et al. 2018 §4.4): config checks, data, model choice, loss, metrics.

:class:`ProgramEvalTask` checks the config (:func:`gain_schedule` for ``task.hyper_gain_schedule``), draws
fresh training programs and fixed validation / ``test/d{k}`` sets, builds the configured unit or the
baseline (``task.candidates`` of them side by side), and draws ``accuracy_by_digits.png``. The design is
in the package docstring (``tasks/program_eval/__init__.py``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nalu_suite.errors import ConfigError, check_choice, check_int, check_positive
from nalu_suite.figures import save_figure
from nalu_suite.rng import derive_seed
from nalu_suite.tasks.base import ArithmeticModel, Task
from nalu_suite.tasks.program_eval.candidates import Candidates
from nalu_suite.tasks.program_eval.encoding import CONTROLLER_INPUTS, encode_programs
from nalu_suite.tasks.program_eval.metric import ProgramMetric
from nalu_suite.tasks.program_eval.models import CONFIGURE_FROM, ConfiguredUnitModel, DirectRegressionModel
from nalu_suite.tasks.program_eval.programs import (
    KINDS,
    NUMBER,
    OPERATIONS,
    Program,
    ProgramGenerator,
    max_literals,
    tokenize,
)
from nalu_suite.tasks.program_eval.reader import RECURRENT_CELLS
from nalu_suite.units import UNIT_NAMES


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
        self.train_digits = check_int("task.train_digits", task.get("train_digits"), 1, 15)
        test_digits = task.get("test_digits")
        if not isinstance(test_digits, (list, tuple)) or not test_digits:
            raise ConfigError(f"task.test_digits={test_digits!r} must be a non-empty list of digit counts")
        for k in test_digits:
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 15:
                raise ConfigError(f"task.test_digits entry {k!r} must be an integer in [1, 15]")
        self.test_digits = tuple(test_digits)
        self.test_splits = tuple(f"test/d{k}" for k in self.test_digits)
        self.nesting = check_int("task.nesting", task.get("nesting"), 1)
        self.operations = tuple(task.get("operations") or OPERATIONS)
        self.make_generator(self.train_digits)  # validates nesting and operations
        self.num_literals = max_literals(self.kind, self.nesting)
        self.value_scale = check_positive("task.value_scale", task.get("value_scale", 100.0))
        self.value_gain = check_positive("task.value_gain", task.get("value_gain", 5.0))
        self.hyper_gain = check_positive("task.hyper_gain", task.get("hyper_gain", 10.0))
        self.hyper_gain_schedule = gain_schedule(task.get("hyper_gain_schedule"))
        eval_gain = task.get("eval_gain")
        self.eval_gain = None if eval_gain is None else check_positive("task.eval_gain", eval_gain)
        check_choice("task.controller", task.get("controller", "lstm"), RECURRENT_CELLS)
        check_choice("task.controller_inputs", task.get("controller_inputs", "relative"), CONTROLLER_INPUTS)
        check_choice("task.configure_from", task.get("configure_from", "literals"), CONFIGURE_FROM)
        for key in ("hidden_size", "embedding_size", "eval_size", "figure_size", "chunk"):
            check_int(f"task.{key}", task.get(key), 1)
        self.candidates = check_int("task.candidates", task.get("candidates", 1), 1)
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
        (:class:`~nalu_suite.tasks.program_eval.candidates.Candidates`: restarts chosen on fresh 2-digit
        programs)."""
        if self.candidates == 1:
            return self.build_one_model()
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
        return [save_figure(fig, run_dir / "accuracy_by_digits.png")]
