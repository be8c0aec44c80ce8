"""Read numbers written in words with a trained language-to-number model (paper §4.3).

    nalu-predict CKPT "seven hundred and seventy seven" "Forty-two"
    nalu-predict CKPT --per-token "seven hundred and seventy seven"

Prints one line per phrase: the phrase (tabs, newlines and runs of spaces made one space), a tab, the
predicted integer (the model's output rounded). ``--per-token`` adds one line per word with the
prediction after that word (two spaces, the word, a tab, the prediction). Input is normalised first:
case does not matter, hyphens split words and the "and" after "hundred" may be left out. Bad input (a
missing or unreadable file, a checkpoint of another task, an empty phrase, a word outside the
vocabulary, words that are not a number from 0 to 999) prints one line ``error: ...`` on stderr and
exits with status 2.

CKPT is a checkpoint written by ``python train.py task=num2words`` (``checkpoints/best.ckpt`` in the
run directory). It is read with ``torch.load(weights_only=True)``, so loading it runs no pickled code,
and the model is rebuilt from the hyper-parameters stored in it; Lightning is not imported.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

from nalu_suite.errors import clip_text

TASK_NAME = "num2words"


class PredictError(Exception):
    """Bad input to the command line tool; the message is printed as ``error: <message>``."""


def load_model(path: str | Path):
    """``(task, model)`` from a num2words checkpoint, the model in evaluation mode."""
    from nalu_suite.errors import ConfigError
    from nalu_suite.evaluate import model_from_checkpoint

    path = Path(path)
    if not path.is_file():
        raise PredictError(f"checkpoint {str(path)!r} does not exist (or is not a file)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for files that are no (safe) checkpoint
        raise PredictError(
            f"{str(path)!r} is not a readable PyTorch checkpoint ({type(err).__name__}; loaded with "
            "weights_only=True, which refuses pickled code)"
        ) from err
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or not isinstance(hparams.get("task"), dict):
        raise PredictError(f"{str(path)!r} is not a nalu-suite checkpoint (it has no task hyper-parameters)")
    name = hparams["task"].get("name")
    if name != TASK_NAME:
        raise PredictError(
            f"{str(path)!r} is a checkpoint of task {name!r}; this tool reads {TASK_NAME!r} checkpoints "
            f"(python train.py task={TASK_NAME})"
        )
    try:
        return model_from_checkpoint(checkpoint)
    except (ConfigError, KeyError, RuntimeError) as err:
        raise PredictError(f"{str(path)!r} does not match this version's model: {err}") from err


def read_phrases(phrases: list[str]) -> list[list[str]]:
    """Normalise every phrase, or raise :class:`PredictError` naming the first bad one."""
    from nalu_suite.tasks.num2words_data import PhraseError, normalize_phrase

    words = []
    for phrase in phrases:
        try:
            words.append(normalize_phrase(phrase))
        except PhraseError as err:
            # the phrase cut to a readable length (a 10,000-word phrase stays one short line), and any
            # overlong word the message quotes cut too
            reason = re.sub(r"\S{41,}", lambda m: m.group()[:39] + "…", str(err))
            raise PredictError(f"{clip_text(phrase)!r}: {reason}") from err
    return words


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nalu-predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("checkpoint", help="a num2words checkpoint, e.g. RUN_DIR/checkpoints/best.ckpt")
    parser.add_argument("phrases", nargs="+", help='numbers in words, e.g. "seven hundred and seventy seven"')
    parser.add_argument("--per-token", action="store_true", help="also print the prediction after every word")
    args = parser.parse_args(argv)
    try:
        _, model = load_model(args.checkpoint)
        words = read_phrases(args.phrases)
    except PredictError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    from nalu_suite.tasks.num2words import per_token_predictions

    for phrase, phrase_words, values in zip(
        args.phrases, words, per_token_predictions(model, words), strict=True
    ):
        print(f"{' '.join(phrase.split())}\t{round(values[-1])}")  # a tab or newline in it: one field
        if args.per_token:
            for word, value in zip(phrase_words, values, strict=True):
                print(f"  {word}\t{value:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
