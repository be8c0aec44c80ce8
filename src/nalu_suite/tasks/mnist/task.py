"""The MNIST sequence tasks (Trask et al. 2018 §4.2, Table 2): ``mnist_count`` and ``mnist_add``.

:class:`MnistSequenceTask` checks the config, splits the image table into disjoint train / validation /
test pools, serves fixed evaluation sequences, builds
:class:`~nalu_suite.tasks.mnist.model.DigitSequenceModel` and reports ``mae``, ``acc``, ``rel_err`` and
``mse`` per split; :class:`MnistCountTask` and :class:`MnistAddTask` set the target. The design is in the
package docstring (``tasks/mnist/__init__.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nalu_suite.encoders.cnn import VARIANTS as CNN_VARIANTS
from nalu_suite.errors import ConfigError, check_choice, check_positive_int
from nalu_suite.rng import generator
from nalu_suite.tasks.base import Task
from nalu_suite.tasks.mnist.data import MnistDigits, load_mnist, prepare_mnist
from nalu_suite.tasks.mnist.model import CORES, DIGIT_VALUES, DigitSequenceModel
from nalu_suite.tasks.mnist.sequences import NUM_DIGITS, count_targets, draw_sequences, sum_targets
from nalu_suite.units import UNIT_NAMES
from nalu_suite.units.cells import CELL_NAMES, CLASSIC_CELLS


class MnistSequenceTask(Task):
    """Shared by counting and addition; subclasses set ``name``, ``out_features`` and the target."""

    out_features = NUM_DIGITS
    val_splits = ("val",)
    monitor = "val/mae"

    def __init__(self, task: dict[str, Any], unit: dict[str, Any], seed: int) -> None:
        super().__init__(task, unit, seed)
        check_choice("unit.first", unit.get("first"), CELL_NAMES)
        check_choice("unit.second", unit.get("second"), UNIT_NAMES)
        self.train_length = self._positive_int("train_length")
        self.val_images = self._positive_int("val_images")
        self.val_sequences = self._positive_int("val_sequences")
        self.hidden_size = self._positive_int("hidden_size")
        self.rnn_hidden_size = self._positive_int("rnn_hidden_size")
        self.test_lengths = [int(x) for x in task.get("test_lengths", [1, 10, 100, 1000])]
        counts = task.get("test_sequences", [1000] * len(self.test_lengths))
        counts = (
            [int(counts)] * len(self.test_lengths) if isinstance(counts, int) else [int(x) for x in counts]
        )
        if len(counts) != len(self.test_lengths) or min(self.test_lengths + counts, default=0) < 1:
            raise ConfigError(
                f"task.test_lengths={self.test_lengths} and task.test_sequences={counts} must be positive "
                "integers, one sequence count per test length"
            )
        self.test_sequences = dict(zip(self.test_lengths, counts, strict=True))
        self.test_splits = tuple(f"test/len{length}" for length in self.test_lengths)
        self.verify_checksums = bool(task.get("verify_checksums", True))
        self.cnn = str(task.get("cnn", "2018"))
        check_choice("task.cnn", self.cnn, CNN_VARIANTS)
        self.cnn_warmup_steps = int(task.get("cnn_warmup_steps", 0))
        if self.cnn_warmup_steps < 0:
            raise ConfigError(f"task.cnn_warmup_steps={self.cnn_warmup_steps} must be >= 0")
        self.cnn_average = float(task.get("cnn_average", 0.0))
        if not 0.0 <= self.cnn_average < 1.0:
            raise ConfigError(f"task.cnn_average={self.cnn_average} must be in [0, 1) (0: no averaging)")
        self.cnn_lr_scale = float(task.get("cnn_lr_scale", 1.0))
        if not self.cnn_lr_scale > 0:
            raise ConfigError(f"task.cnn_lr_scale={self.cnn_lr_scale} must be > 0")
        self.core = str(task.get("core", "shared"))
        check_choice("task.core", self.core, CORES)
        self.cnn_dropout = float(task.get("cnn_dropout", 0.5))
        if not 0.0 <= self.cnn_dropout < 1.0:
            raise ConfigError(f"task.cnn_dropout={self.cnn_dropout} must be in [0, 1)")
        self.allowed_digits = self._digit_set(task.get("digits"))
        self.data_dir = task.get("data_dir")
        self.digits: MnistDigits | None = None  # attached by the datamodule's setup (or attach_digits)

    @staticmethod
    def _digit_set(value) -> tuple[int, ...]:
        """``task.digits``: the digits whose images the pools keep (default, null: all ten)."""
        if value is None:
            return tuple(range(NUM_DIGITS))
        try:
            digits = tuple(sorted({int(d) for d in value}))
        except (TypeError, ValueError):
            digits = ()
        if not digits or not all(0 <= d < NUM_DIGITS for d in digits):
            raise ConfigError(f"task.digits={value!r} must be a non-empty list of digits 0-9")
        return digits

    def _positive_int(self, key: str) -> int:
        return check_positive_int(f"task.{key}", self.cfg.get(key))

    # --- targets (subclasses) -------------------------------------------------------------------
    digit_value: str | None = None

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # --- data --------------------------------------------------------------------------------
    def attach_digits(self, digits: MnistDigits) -> None:
        """Use ``digits`` as the image table."""
        if digits.n_train <= self.val_images:
            raise ConfigError(
                f"task.val_images={self.val_images} leaves no training images (the data has {digits.n_train})"
            )
        if digits.n_test < 1:
            raise ConfigError("the MNIST data has no test images")
        self.digits = digits
        self._images_by_device: dict[torch.device, torch.Tensor] = {}

    def require_digits(self) -> MnistDigits:
        if self.digits is None:
            if not self.data_dir:
                raise RuntimeError(
                    "no MNIST data attached: set up the datamodule or call attach_digits() first"
                )
            prepare_mnist(self.data_dir, verify_checksums=self.verify_checksums)
            self.attach_digits(load_mnist(self.data_dir))
        return self.digits

    def pool(self, name: str) -> torch.Tensor:
        """Indices (into the image table) of the ``train``, ``val`` or ``test`` pool; they are disjoint.
        Only images of ``task.digits`` are kept."""
        d = self.require_digits()
        first_val = d.n_train - self.val_images
        bounds = {"train": (0, first_val), "val": (first_val, d.n_train), "test": (d.n_train, len(d.labels))}
        check_choice("pool", name, bounds)
        indices = torch.arange(*bounds[name])
        if len(self.allowed_digits) < NUM_DIGITS:
            indices = indices[torch.isin(d.labels[indices], torch.tensor(self.allowed_digits))]
        return indices

    def sequences(
        self, pool: str, n: int, length: int, g: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` sequences of ``length`` images from ``pool``: ``(indices (n, length), targets (n, out))``."""
        indices = draw_sequences(self.pool(pool), n, length, g)
        return indices, self.targets(self.digits.labels[indices])

    def sample_train(self, g: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sequences("train", n, self.train_length, g)

    def fixed_set(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed validation (``val``) or test (``test/len{L}``) sequences."""
        check_choice("split", split, self.val_splits + self.test_splits)
        if split == "val":
            return self.sequences(
                "val", self.val_sequences, self.train_length, generator(self.seed, "eval", split)
            )
        length = int(split.removeprefix("test/len"))
        return self.sequences(
            "test", self.test_sequences[length], length, generator(self.seed, "eval", split)
        )

    def build_datamodule(self, data_dir: str | Path, batch_size: int):
        from nalu_suite.tasks.mnist.datamodule import MnistSequenceDataModule  # imports Lightning

        self.data_dir = str(data_dir)
        return MnistSequenceDataModule(self, data_dir, batch_size)

    def preview(self, n: int) -> list[dict[str, Any]]:
        indices, targets = self.sequences("train", n, self.train_length, generator(self.seed, "preview"))
        rows = []
        for idx, target in zip(indices, targets, strict=True):
            digits = self.digits.labels[idx].tolist()
            shown = target.long().tolist() if target.numel() > 1 else int(target)
            rows.append(
                {
                    "text": f"images of the digits {' '.join(map(str, digits))} -> {shown}",
                    "inputs": idx.tolist(),  # rows of the image table (MNIST train 0..59999, test 60000..)
                    "target": target.tolist() if target.numel() > 1 else float(target),
                }
            )
        return rows

    # --- model and steps ---------------------------------------------------------------------
    def build_model(self) -> DigitSequenceModel:
        if self.unit["first"] in CLASSIC_CELLS:
            hidden = self.rnn_hidden_size
        else:  # hidden_size accumulators per channel
            hidden = self.hidden_size * (self.out_features if self.core == "joint" else 1)
        return DigitSequenceModel(
            unit=self.unit,
            out_features=self.out_features,
            hidden_size=hidden,
            digit_value=self.digit_value,
            cnn=self.cnn,
            cnn_dropout=self.cnn_dropout,
            core=self.core,
            cnn_lr_scale=self.cnn_lr_scale,
            cnn_warmup_steps=self.cnn_warmup_steps,
            cnn_average=self.cnn_average,
            **self.model_options(),
        )

    def model_options(self) -> dict[str, Any]:
        """Further :class:`DigitSequenceModel` arguments of a subclass (e.g. ``cumulative``)."""
        return {}

    def images_on(self, device: torch.device) -> torch.Tensor:
        """The ``uint8`` image table on ``device`` (copied there once)."""
        images = self.require_digits().images
        if device not in self._images_by_device:
            self._images_by_device[device] = images.to(device)
        return self._images_by_device[device]

    def predict(self, model: DigitSequenceModel, batch) -> tuple[torch.Tensor, torch.Tensor]:
        indices, target = batch
        images = self.images_on(indices.device)
        if model.training or torch.is_grad_enabled():
            features = model.digit_features(images[indices])
        else:
            features = model.cached_digit_features(images, indices)
        return model.accumulate(features), target

    def finalize_metrics(self, split: str, values: dict[str, float]) -> dict[str, float]:
        return {
            "mae": values["mae"],
            "acc": values["exact"],
            "rel_err": values["rel_err"],
            "mse": values["mse"],
        }


class MnistCountTask(MnistSequenceTask):
    """Digit counting: the target is the 10-vector of how many images of each digit the sequence holds."""

    name = "mnist_count"
    out_features = NUM_DIGITS

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        return count_targets(labels)


class MnistAddTask(MnistSequenceTask):
    """Digit addition: the target is the sum of the digits in the sequence."""

    name = "mnist_add"
    out_features = 1

    def __init__(self, task: dict[str, Any], unit: dict[str, Any], seed: int) -> None:
        super().__init__(task, unit, seed)
        check_choice("task.digit_value", task.get("digit_value", "learned"), DIGIT_VALUES)
        self.digit_value = task.get("digit_value", "learned")

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        return sum_targets(labels)
