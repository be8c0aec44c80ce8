"""Language to number translation (Trask et al. 2018 §4.3, Table 3): "seven hundred and seventy seven" -> 777.

Data (``num2words_data.py``): the numbers 0..999 as word tokens, split 169 / 200 / 631 with 0..19 and
every word in train. Model: embedding -> recurrent encoder (LSTM by default) -> an arithmetic head
built from the ``unit`` config, applied to the encoder state after **every** token, so the model can
be read word by word (the paper's figure of intermediate predictions, see :meth:`make_figures`).

Head and training options (``conf/task/num2words.yaml`` says which defaults we chose and why):

* ``head_layers``: 1 = ``unit.second`` (hidden -> 1); 2 = ``unit.first`` (hidden -> ``head_hidden``)
  then ``unit.second``. With ``unit=lstm`` (first lstm, second linear) this is the paper's "LSTM + linear".
* ``readout``: ``state`` (paper) predicts ``y_t = s * head(h_t)``; ``sum`` predicts each word's
  contribution and adds them up, ``y_t = s * sum_{k<=t} head(h_k)`` (an accumulator over time, the
  recurrent-NAC idea of §4.1 with the weight fixed at 1); ``affine`` reads two head outputs per word,
  ``y_t = exp(max(0, head_0)) * y_{t-1} + s * head_1`` (a multiply-then-add accumulator). ``s`` is
  ``output_scale``.
* ``supervision``: ``final`` (paper; the authors: the head is applied "only to the final element");
  ``every_token``: the value of every prefix is a target too ("seven hundred" -> 700);
  ``every_token_strict``: the same without prefixes that spell a validation or test number. With
  ``every_token``, a test phrase such as "seven hundred" can be the beginning of a training phrase
  ("seven hundred and five") and so be trained on with its value; ``test_novel/*`` reports the test
  numbers for which that never happens.
* ``state_noise``: during training the encoder starts from a random state ``N(0, state_noise^2)``
  instead of zeros, so what it computes for a word depends less on context it has not seen.

Metrics: ``val/*`` on the validation numbers; at test time ``train/*`` (the 169 training phrases,
evaluated like the others), ``test/*`` (all 631 test numbers) and ``test_novel/*`` (see above):
``mae``, ``exact`` (rounded prediction == number), ``mse``, ``rel_err``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from nalu_suite.errors import ConfigError, check_choice, check_positive, check_positive_int
from nalu_suite.figures import save_figure
from nalu_suite.tasks.base import ArithmeticModel, Task
from nalu_suite.tasks.num2words_data import (
    MAX_TOKENS,
    PAD_ID,
    VOCAB,
    decode,
    encode,
    number_tensors,
    number_to_words,
    split_numbers,
    words_to_number,
)

READOUTS = ("state", "sum", "affine")
#: ``readout='affine'``: the multiplier ``exp(max(0, head_0))`` is capped at ``exp(MAX_LOG_MULTIPLIER)``
MAX_LOG_MULTIPLIER = 10.0
SUPERVISIONS = ("final", "every_token", "every_token_strict")
HEAD_INPUTS = ("state", "state_and_embedding")


class WordsToNumberModel(ArithmeticModel):
    """Embedding -> recurrent encoder -> arithmetic head on every encoder state; ``forward`` gives the
    prediction after every token, ``[batch, time]`` (after the last word it stays at the final value
    for ``readout='sum'`` and ``'affine'``; padding positions are meaningless for ``readout='state'``)."""

    def __init__(
        self,
        *,
        encoder: str,
        head: list[tuple[str, dict[str, Any]]],
        embedding_size: int,
        hidden_size: int,
        head_hidden: int,
        readout: str,
        output_scale: float,
        state_noise: float,
        head_input: str = "state",
        encoder_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        from nalu_suite.units import build_unit
        from nalu_suite.units.cells import build_cell

        self.readout = readout
        self.output_scale = float(output_scale)
        self.state_noise = float(state_noise)
        self.head_input = head_input
        head_in = hidden_size + (embedding_size if head_input == "state_and_embedding" else 0)
        sizes = [head_in] + [head_hidden] * (len(head) - 1) + [2 if readout == "affine" else 1]
        try:
            self.embedding = nn.Embedding(len(VOCAB), embedding_size, padding_idx=PAD_ID)
            self.encoder = build_cell(encoder, embedding_size, hidden_size, **(encoder_options or {}))
            self.head = nn.Sequential(
                *(
                    build_unit(name, n_in, n_out, **options)
                    for (name, options), n_in, n_out in zip(head, sizes[:-1], sizes[1:], strict=True)
                )
            )
        except (TypeError, ValueError) as err:
            raise ConfigError(str(err)) from err

    def initial_state(self, batch_size: int, like: torch.Tensor):
        """Zeros (the cell's own initial state); while training, ``N(0, state_noise^2)`` noise instead."""
        state = self.encoder.initial_state(batch_size, device=like.device, dtype=like.dtype)
        if not (self.training and self.state_noise > 0):
            return state
        if isinstance(state, tuple):
            return tuple(s + self.state_noise * torch.randn_like(s) for s in state)
        return state + self.state_noise * torch.randn_like(state)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        from nalu_suite.units.cells import run_cell

        x = self.embedding(tokens)
        states, _ = run_cell(self.encoder, x, self.initial_state(tokens.shape[0], x))
        if self.head_input == "state_and_embedding":
            states = torch.cat([states, x], dim=-1)
        out = self.head(states)
        words = tokens != PAD_ID
        if self.readout == "state":
            out = out.squeeze(-1)
        elif self.readout == "sum":
            out = (out.squeeze(-1) * words).cumsum(dim=1)
        else:
            out = self.multiply_add(out, words)
        return out * self.output_scale

    @staticmethod
    def multiply_add(out: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """``readout='affine'``: ``y_t = m_t * y_{t-1} + out_t1`` from ``y_0 = 0`` with the multiplier
        ``m_t = exp(max(0, out_t0))`` (exactly 1 wherever ``out_t0 <= 0``); padding keeps ``y``."""
        multiplier = out[..., 0].clamp(min=0.0, max=MAX_LOG_MULTIPLIER).exp()
        y = out.new_zeros(out.shape[0])
        values = []
        for t in range(out.shape[1]):
            y = torch.where(words[:, t], multiplier[:, t] * y + out[:, t, 1], y)
            values.append(y)
        return torch.stack(values, dim=1)

    def final(self, tokens: torch.Tensor) -> torch.Tensor:
        """The prediction after each phrase's last word, ``[batch, 1]``."""
        last = (tokens != PAD_ID).sum(dim=1).clamp_min(1) - 1
        return self(tokens).gather(1, last.unsqueeze(1))


class Num2WordsTask(Task):
    name = "num2words"
    val_splits = ("val",)
    test_splits = ("train", "test", "test_novel")
    monitor = "val/mae"

    def __init__(self, task: dict[str, Any], unit: dict[str, Any], seed: int) -> None:
        super().__init__(task, unit, seed)
        from nalu_suite.units import UNIT_NAMES
        from nalu_suite.units.cells import CELL_NAMES, CLASSIC_CELLS

        self.readout = task.get("readout", "state")
        self.supervision = task.get("supervision", "final")
        check_choice("task.readout", self.readout, READOUTS)
        check_choice("task.supervision", self.supervision, SUPERVISIONS)
        self.head_layers = int(task.get("head_layers", 1))
        check_choice("task.head_layers", self.head_layers, (1, 2))
        for key in ("embedding_size", "hidden_size", "head_hidden", "train_size", "val_size"):
            check_positive_int(f"task.{key}", task.get(key))
        check_positive("task.output_scale", task.get("output_scale", 1.0))
        self.state_noise = float(task.get("state_noise", 0.0))
        if self.state_noise < 0:
            raise ConfigError(f"task.state_noise={self.state_noise} must be >= 0")
        check_choice("task.head_input", task.get("head_input", "state"), HEAD_INPUTS)

        encoder = task.get("encoder")
        if encoder is None:
            encoder = unit.get("first") if unit.get("first") in CLASSIC_CELLS else "lstm"  # unit=lstm, gru...
        check_choice("task.encoder", encoder, CELL_NAMES)
        self.encoder = encoder
        layers = ("first", "second") if self.head_layers == 2 else ("second",)
        for layer in layers:
            if unit.get(layer) not in UNIT_NAMES:
                hint = " (set task.head_layers=1 to use only unit.second)" if layer == "first" else ""
                raise ConfigError(
                    f"unit.{layer}={unit.get(layer)!r} is not an arithmetic unit and cannot be a head layer"
                    f"{hint}; choose one of: {', '.join(UNIT_NAMES)}"
                )
        self.head = [(unit[layer], dict(unit.get(f"{layer}_options") or {})) for layer in layers]
        self.splits = split_numbers(seed, int(task["train_size"]), int(task["val_size"]))

    # --- model -------------------------------------------------------------------------------
    def build_model(self) -> WordsToNumberModel:
        return WordsToNumberModel(
            encoder=self.encoder,
            encoder_options=self.cfg.get("encoder_options"),
            head=self.head,
            embedding_size=int(self.cfg["embedding_size"]),
            hidden_size=int(self.cfg["hidden_size"]),
            head_hidden=int(self.cfg["head_hidden"]),
            readout=self.readout,
            output_scale=float(self.cfg.get("output_scale", 1.0)),
            state_noise=self.state_noise,
            head_input=self.cfg.get("head_input", "state"),
        )

    # --- data --------------------------------------------------------------------------------
    def supervised_positions(self, tokens: torch.Tensor) -> torch.Tensor:
        """Which prefix targets the loss uses, ``[N, T]`` bool.

        Always the last word. ``every_token`` adds every earlier prefix; ``every_token_strict`` skips a
        prefix that spells a validation or test number ("forty" of "forty two" when 40 is a test number),
        so no held-out phrase is ever a training input with its label.
        """
        lengths = (tokens != PAD_ID).sum(dim=1)
        mask = torch.zeros_like(tokens, dtype=torch.bool)
        mask[torch.arange(len(tokens)), lengths - 1] = True
        if self.supervision == "final":
            return mask
        held_out = set(self.splits["val"]) | set(self.splits["test"])
        strict = self.supervision == "every_token_strict"
        for row, length in enumerate(lengths.tolist()):
            words = decode(tokens[row])
            for t in range(length - 1):
                mask[row, t] = not (strict and _spelled_number(words[: t + 1]) in held_out)
        return mask

    def numbers(self, split: str) -> list[int]:
        """The numbers of a split; ``test_novel`` is the test numbers whose phrase is not the beginning of
        any training phrase (``every_token`` supervision trains on those beginnings, e.g. "seven
        hundred" inside "seven hundred and five"), the fair subset to compare supervision modes on."""
        if split != "test_novel":
            return self.splits[split]
        prefixes = {tuple(number_to_words(n)[:t]) for n in self.splits["train"] for t in range(1, MAX_TOKENS)}
        return [n for n in self.splits["test"] if tuple(number_to_words(n)) not in prefixes]

    def split_tensors(self, split: str) -> tuple[torch.Tensor, ...]:
        """``(tokens, prefix_targets, supervised, value)`` of a split's numbers."""
        tokens, prefixes, value = number_tensors(self.numbers(split))
        return tokens, prefixes, self.supervised_positions(tokens), value

    def build_datamodule(self, data_dir: str | Path, batch_size: int):
        from torch.utils.data import TensorDataset

        from nalu_suite.data import TensorDataModule

        return TensorDataModule(
            TensorDataset(*self.split_tensors("train")),
            val=[self.split_tensors(s) for s in self.val_splits],
            test=[self.split_tensors(s) for s in self.test_splits],
            batch_size=batch_size,
            shuffle=True,
        )

    def preview(self, n: int) -> list[dict[str, Any]]:
        tokens, prefixes, supervised, value = self.split_tensors("train")
        rows = []
        for i in range(min(n, len(tokens))):
            length = int((tokens[i] != PAD_ID).sum())
            rows.append(
                {
                    "text": " ".join(decode(tokens[i])),
                    "inputs": tokens[i, :length].tolist(),
                    "target": int(value[i]),
                    "prefix_targets": [int(v) for v in prefixes[i, :length]],
                    "supervised": supervised[i, :length].tolist(),
                }
            )
        return rows

    # --- steps -------------------------------------------------------------------------------
    def predict(self, model: WordsToNumberModel, batch) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, _, _, value = batch
        return model.final(tokens), value

    def loss(self, model: WordsToNumberModel, batch) -> torch.Tensor:
        """MSE over the supervised prefix targets, in units of ``output_scale``."""
        tokens, prefixes, supervised, _ = batch
        err = (model(tokens) - prefixes)[supervised] / model.output_scale
        return err.pow(2).mean()

    # --- artefacts ---------------------------------------------------------------------------
    def figure_numbers(self, count: int = 4) -> list[int]:
        """Test numbers for the figure: the longest phrases, spread over the test split."""
        longest = [n for n in self.splits["test"] if len(number_to_words(n)) == MAX_TOKENS]
        pool = longest or self.splits["test"]
        step = max(1, len(pool) // count)
        return pool[::step][:count]

    def make_figures(self, model: nn.Module, run_dir: Path) -> list[Path]:
        numbers = [int(n) for n in self.cfg.get("figure_numbers") or self.figure_numbers()]
        path = Path(run_dir) / "per_token_predictions.png"
        head = " -> ".join(name for name, _ in self.head)
        title = f"{self.encoder} encoder, {head} head (unit={self.unit.get('name')}), readout={self.readout}"
        plot_per_token(model, [number_to_words(n) for n in numbers], path, title=title)
        return [path]


def _spelled_number(words: list[str]) -> int | None:
    """The number the words spell, or None if they are not a complete number phrase."""
    try:
        return words_to_number(words)
    except ValueError:
        return None


@torch.no_grad()
def per_token_predictions(model: WordsToNumberModel, phrases: list[list[str]]) -> list[list[float]]:
    """The model's prediction after each word of each phrase (evaluation mode)."""
    was_training = model.training
    model.eval()
    try:
        out = model(encode(phrases))
    finally:
        model.train(was_training)
    return [out[i, : len(p)].tolist() for i, p in enumerate(phrases)]


def plot_per_token(model: WordsToNumberModel, phrases: list[list[str]], path: Path, title: str = "") -> Path:
    """The paper's figure of intermediate predictions: one panel per phrase, the prediction after each
    word (dots, labelled) against the value of the prefix so far (line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nalu_suite.tasks.num2words_data import prefix_values

    predictions = per_token_predictions(model, phrases)
    fig, axes = plt.subplots(1, len(phrases), figsize=(3.6 * len(phrases), 3.4), squeeze=False)
    for ax, words, pred in zip(axes[0], phrases, predictions, strict=True):
        steps = range(len(words))
        ax.plot(steps, prefix_values(words), "-", color="0.7", label="value of the prefix")
        ax.plot(steps, pred, "o", color="C0", label="prediction")
        for t, y in zip(steps, pred, strict=True):
            ax.annotate(
                f"{y:.1f}", (t, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8
            )
        ax.set_xticks(list(steps), words, rotation=30, ha="right")
        ax.set_title(f"{words_to_number(words)}", fontsize=10)
        ax.margins(y=0.15)
    axes[0][0].set_ylabel("prediction after the word")
    axes[0][0].legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)
