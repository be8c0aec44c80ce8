"""MNIST digit counting and digit addition over image sequences (Trask et al. 2018 §4.2, Table 2).

A sample is a sequence of MNIST images; the target is only known for the whole sequence:

* ``mnist_count``: the 10-vector of how many images of each digit the sequence holds;
* ``mnist_add``: the sum of the digits.

No digit labels reach the model: it is trained end to end on the sequence targets, with MSE.

**Data.** MNIST training images ``[0, 60000 - val_images)`` form the training pool, the last
``val_images`` (5000, as Madsen & Johansen) the validation pool, the 10,000 MNIST test images the test
pool. Training sequences (length ``train_length`` = 10) are fresh every step; validation holds
``val_sequences`` fixed length-10 sequences; the tests hold ``test_sequences[i]`` fixed sequences of
length ``test_lengths[i]`` (1, 10, 100, 1000). Sequences are cut from back-to-back random permutations
of their pool, so every image of a pool is used equally often (at length 1 with 10,000 sequences: each
test image exactly once, which makes ``test/len1/acc`` the classifier's MNIST test accuracy).

**Model** (:class:`DigitSequenceModel`): the PyTorch-example CNN (``encoders/cnn.py``) turns every image
into a *soft digit*, the softmax over its 10 scores. The core reads *channels*: for counting the 10
entries of the soft digit, for addition one channel, the soft digit's value ``v · softmax``
(``task.digit_value``: ``learned`` = a free linear map 10 -> 1, ``expectation`` = fixed v = (0, ..., 9),
the softmax expectation of Madsen & Johansen's code). The recurrent core is ``unit.first`` as a cell,
``h_t = first([x_t, h_{t-1}])``, and ``unit.second`` maps its final state to the output, as in
``recurrent_arith``. ``task.core``:

* ``shared`` (default): one cell with 1 input and one ``second`` with 1 output, the same weights for every
  channel; each channel is a sequence of numbers to accumulate (for counting: digit k's probability).
* ``joint``: one cell reads all channels at once (10 inputs for counting) and ``second`` maps its state to
  all outputs; the cell could mix digits, which it must unlearn.

State size: ``task.hidden_size`` per channel for arithmetic units (1: one accumulator),
``task.rnn_hidden_size`` for lstm / gru / rnn_tanh / rnn_relu.

**Training schedule** (``docs/mnist.md``). Both parts start random. With one learning
rate the CNN commits first: before the core has learned to add, the fastest way down the loss is to put
every image into the same softmax slot, the softmax saturates and its gradient vanishes (counting: within
100 steps). So the CNN learns ``task.cnn_lr_scale`` (0.1) times slower than the core
(:class:`SlowAveragedModule`), and the first ``task.cnn_warmup_steps`` steps (400 in both tasks' configs)
train the core alone: without them addition collapses within 20 steps, and counting did on one seed of
three (seed 2). The core then settles on
an accumulator and the CNN learns the digits from the sequence targets. Evaluation uses a moving average
of the CNN's weights (``task.cnn_average``), which takes out the noise of the constant learning rate.

**Cheap long-sequence evaluation.** In evaluation (``model.eval()`` and no gradients) the CNN runs once
per distinct image: :meth:`DigitSequenceModel.cached_digit_features` keeps the features of every image
seen since the weights last changed, so a length-1000 test costs one CNN pass over the 10,000 test images
plus the recurrent core over the sequences, instead of 10^6 CNN passes.

**Metrics** per split: ``mae`` (mean absolute error per output value: for counting, averaged over the 10
counts), ``acc`` (the rounded prediction equals the target; for counting all 10 counts right),
``rel_err`` (sum of absolute errors / sum of absolute targets, i.e. MAE / mean |target|) and ``mse``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nalu_suite.encoders import MnistCNN
from nalu_suite.encoders.cnn import VARIANTS as CNN_VARIANTS
from nalu_suite.errors import ConfigError, check_choice
from nalu_suite.rng import generator
from nalu_suite.tasks.base import ArithmeticModel, Task
from nalu_suite.units import UNIT_NAMES, build_unit
from nalu_suite.units.cells import CELL_NAMES, build_cell, run_cell

CLASSIC_CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
CORES = ("shared", "joint")
DIGIT_VALUES = ("learned", "expectation", "regression")
NUM_DIGITS = 10


# --- sequences -------------------------------------------------------------------------------------
def draw_sequences(pool: torch.Tensor, n: int, length: int, g: torch.Generator) -> torch.Tensor:
    """``(n, length)`` image indices cut from back-to-back random permutations of ``pool``.

    Every image of the pool is used ``floor`` or ``ceil`` of ``n * length / len(pool)`` times.
    """
    if len(pool) == 0:
        raise ConfigError("cannot draw sequences from an empty image pool; check task.val_images")
    total = n * length
    rounds = math.ceil(total / len(pool))
    order = torch.cat([pool[torch.randperm(len(pool), generator=g)] for _ in range(rounds)])
    return order[:total].reshape(n, length)


def count_targets(labels: torch.Tensor) -> torch.Tensor:
    """``(n, T)`` digit labels -> ``(n, 10)`` counts of each digit."""
    return nn.functional.one_hot(labels, NUM_DIGITS).sum(dim=1).float()


def sum_targets(labels: torch.Tensor) -> torch.Tensor:
    """``(n, T)`` digit labels -> ``(n, 1)`` sums."""
    return labels.sum(dim=1, keepdim=True).float()


# --- model -----------------------------------------------------------------------------------------
class SlowAveragedModule(nn.Module):
    """``module`` trained ``lr_scale`` times slower than the rest and evaluated with averaged weights.

    * Learning-rate multiplier: the parameters are stored as ``theta = w / lr_scale`` and used as
      ``w = lr_scale * theta``. Adam (and AdamW, RMSprop) moves every ``theta`` by about ``lr`` per step
      whatever the gradient's size, so ``w`` moves about ``lr_scale * lr`` (with plain SGD the factor is
      ``lr_scale ** 2``); no second optimiser group is needed.
    * Weight averaging (Polyak averaging; ``average`` = the decay ``d`` of an exponential moving average,
      0 = off): every training forward pass first folds the current weights into the average,
      ``avg = d_n * avg + (1 - d_n) * theta`` with ``d_n = min(d, (1 + n) / (10 + n))`` after ``n`` updates;
      in eval mode the module computes with the average. Averaging the last ~1/(1 - d) steps removes most
      of the noise of a constant learning rate, as a decaying learning rate would.
    """

    def __init__(self, module: nn.Module, lr_scale: float = 1.0, average: float = 0.0) -> None:
        super().__init__()
        if not lr_scale > 0:
            raise ValueError(f"SlowAveragedModule lr_scale={lr_scale!r} must be > 0")
        if not 0.0 <= average < 1.0:
            raise ValueError(f"SlowAveragedModule average={average!r} must be in [0, 1)")
        self.module = module
        self.lr_scale = float(lr_scale)
        self.average = float(average)
        self.names = [name for name, _ in module.named_parameters()]
        with torch.no_grad():
            for p in module.parameters():
                p.div_(self.lr_scale)
        if self.average:
            for i, p in enumerate(module.parameters()):
                self.register_buffer(f"avg_{i}", p.detach().clone())
            self.register_buffer("avg_updates", torch.zeros((), dtype=torch.long))

    def averaged(self) -> list[torch.Tensor]:
        return [getattr(self, f"avg_{i}") for i in range(len(self.names))]

    @torch.no_grad()
    def _update_average(self) -> None:
        n = int(self.avg_updates)
        decay = min(self.average, (1 + n) / (10 + n))
        for avg, p in zip(self.averaged(), self.module.parameters(), strict=True):
            avg.mul_(decay).add_(p.detach(), alpha=1 - decay)
        self.avg_updates += 1

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        if self.average and self.training and torch.is_grad_enabled():
            self._update_average()
        use_average = self.average and not self.training
        params = self.averaged() if use_average else list(self.module.parameters())
        if self.lr_scale == 1.0 and not use_average:
            return self.module(*args)
        weights = {name: p * self.lr_scale for name, p in zip(self.names, params, strict=True)}
        return torch.func.functional_call(self.module, weights, args)

    def extra_repr(self) -> str:
        return f"lr_scale={self.lr_scale}, average={self.average}"


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
        channels = NUM_DIGITS if digit_value is None else 1
        cell_in, cell_out = (1, 1) if core == "shared" else (channels, out_features)
        # hidden_size is the whole state of the cell; the task scales it with the channels for `joint`
        try:
            self.cell = build_cell(unit["first"], cell_in, hidden_size, **(unit.get("first_options") or {}))
            self.second = build_unit(
                unit["second"], hidden_size, cell_out, **(unit.get("second_options") or {})
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
        through the same 1-input cell and 1-output readout; ``joint``: one cell reads all ``C`` channels.
        """
        batch, length, channels = features.shape
        if self.core == "shared":
            features = features.transpose(1, 2).reshape(batch * channels, length, 1)
        outputs, _ = run_cell(self.cell, features)
        return self.second(outputs[:, -1]).reshape(batch, -1)

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


# --- tasks -----------------------------------------------------------------------------------------
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
        self.data_dir = task.get("data_dir")
        self.digits = None  # MnistDigits, attached by the datamodule's setup (or attach_digits)

    def _positive_int(self, key: str) -> int:
        value = self.cfg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"task.{key}={value!r} must be a positive integer")
        return value

    # --- targets (subclasses) -------------------------------------------------------------------
    digit_value: str | None = None

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # --- data --------------------------------------------------------------------------------
    def attach_digits(self, digits) -> None:
        """Use ``digits`` (a :class:`~nalu_suite.tasks.mnist_data.MnistDigits`) as the image table."""
        if digits.n_train <= self.val_images:
            raise ConfigError(
                f"task.val_images={self.val_images} leaves no training images (the data has {digits.n_train})"
            )
        if digits.n_test < 1:
            raise ConfigError("the MNIST data has no test images")
        self.digits = digits
        self._images_by_device: dict[torch.device, torch.Tensor] = {}

    def require_digits(self):
        if self.digits is None:
            if not self.data_dir:
                raise RuntimeError(
                    "no MNIST data attached: set up the datamodule or call attach_digits() first"
                )
            from nalu_suite.tasks.mnist_data import load_mnist, prepare_mnist

            prepare_mnist(self.data_dir, verify_checksums=self.verify_checksums)
            self.attach_digits(load_mnist(self.data_dir))
        return self.digits

    def pool(self, name: str) -> torch.Tensor:
        """Indices (into the image table) of the ``train``, ``val`` or ``test`` pool; they are disjoint."""
        d = self.require_digits()
        first_val = d.n_train - self.val_images
        bounds = {"train": (0, first_val), "val": (first_val, d.n_train), "test": (d.n_train, len(d.labels))}
        check_choice("pool", name, bounds)
        return torch.arange(*bounds[name])

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
        from nalu_suite.tasks.mnist_data import MnistSequenceDataModule

        self.data_dir = str(data_dir)
        return MnistSequenceDataModule(self, data_dir, batch_size)

    def preview(self, n: int) -> list[dict[str, Any]]:
        indices, targets = self.sequences("train", n, self.train_length, generator(self.seed, "preview"))
        rows = []
        for idx, target in zip(indices, targets, strict=True):
            digits = self.digits.labels[idx].tolist()
            shown = target.long().tolist() if self.out_features > 1 else int(target)
            rows.append(
                {
                    "text": f"images of the digits {' '.join(map(str, digits))} -> {shown}",
                    "inputs": idx.tolist(),  # rows of the image table (MNIST train 0..59999, test 60000..)
                    "target": target.tolist() if self.out_features > 1 else float(target),
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
        )

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
