"""Data of the language-to-number task (Trask et al. 2018 §4.3): the numbers 0..999 in English words.

One token per word, British style ("seven hundred and seventy seven"), so the whole language is
30 words plus padding. Three pieces live here, all plain Python / torch and free of Lightning:

* the vocabulary, :func:`number_to_words` (the canonical phrase of a number) and
  :func:`prefix_values` (the value of every prefix: an accumulator that adds "seven", "seventy", ...
  and multiplies by 100 at "hundred", exactly the arithmetic the model has to learn);
* :func:`normalize_phrase` / :func:`phrase_to_tokens`, the forgiving reader of user input
  (case, hyphens, optional "and") that never guesses: an unknown word is an error naming the word;
* :func:`split_numbers`, the paper's 169 / 200 / 631 split, a deterministic function of the seed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import torch

from nalu_suite.errors import ConfigError
from nalu_suite.rng import generator

ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)  # fmt: skip
TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
PAD = "<pad>"
#: Token ids: padding is 0, then zero..nineteen (ids 1..20), twenty..ninety, "hundred", "and".
VOCAB: tuple[str, ...] = (PAD, *ONES, *TENS, "hundred", "and")
TOKEN_ID: dict[str, int] = {word: i for i, word in enumerate(VOCAB)}
WORDS: tuple[str, ...] = VOCAB[1:]
PAD_ID = TOKEN_ID[PAD]
MAX_NUMBER = 999
#: the longest phrase, e.g. "seven hundred and seventy seven"
MAX_TOKENS = 5

#: what each word adds to the running value; "hundred" multiplies it by 100 and "and" leaves it alone
WORD_VALUE: dict[str, int] = {word: i for i, word in enumerate(ONES)} | {
    word: 10 * (i + 2) for i, word in enumerate(TENS)
}


class PhraseError(ValueError):
    """A phrase that is not a number from 0 to 999 in the task's words; the message says why."""


# --- numbers <-> words ---------------------------------------------------------------------------
def number_to_words(n: int) -> list[str]:
    """The canonical phrase of ``n`` in 0..999 as words: 0 -> zero, 705 -> seven hundred and five."""
    if not isinstance(n, int) or not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"number_to_words needs an integer from 0 to {MAX_NUMBER}, got {n!r}")
    hundreds, rest = divmod(n, 100)
    words = [ONES[hundreds], "hundred"] if hundreds else []
    if rest == 0 and hundreds:
        return words
    if hundreds:
        words.append("and")
    if rest < 20:
        words.append(ONES[rest])
    else:
        tens, ones = divmod(rest, 10)
        words.append(TENS[tens - 2])
        if ones:
            words.append(ONES[ones])
    return words


def prefix_values(words: Sequence[str]) -> list[int]:
    """The value after each word: ``seven hundred and seventy seven`` -> ``[7, 700, 700, 770, 777]``.

    These are the per-token targets (the paper's figure of intermediate predictions shows the same
    quantity). Defined for any sequence of vocabulary words, grammatical or not.
    """
    values, total = [], 0
    for word in words:
        if word == "hundred":
            total *= 100
        elif word != "and":
            total += WORD_VALUE[word]
        values.append(total)
    return values


def words_to_number(words: Sequence[str]) -> int:
    """The number a canonical phrase denotes; :class:`PhraseError` if it is not one.

    A phrase is accepted exactly when it is :func:`number_to_words` of its own accumulated value, so
    the grammar is the generator's: "seven seven", "hundred" or "ninety hundred" are rejected.
    """
    unknown = [w for w in words if w not in WORD_VALUE and w not in ("hundred", "and")]
    if unknown:
        raise PhraseError(unknown_word_message(unknown[0]))
    if not words:
        raise PhraseError("empty phrase: write a number from zero to nine hundred and ninety nine")
    value = prefix_values(words)[-1]
    if value > MAX_NUMBER or number_to_words(value) != list(words):
        raise PhraseError(
            f"not a number from 0 to {MAX_NUMBER} in words (the form is e.g. "
            "'seven hundred and seventy seven', 'forty two', 'zero')"
        )
    return value


# --- user input ----------------------------------------------------------------------------------
_SEPARATORS = re.compile(r"[\s\-]+")


def unknown_word_message(word: str) -> str:
    return f"unknown word {word!r}; the vocabulary is: {', '.join(WORDS)}"


def normalize_phrase(text: str) -> list[str]:
    """User text -> canonical words. Case-insensitive; hyphens split words ("Seventy-seven"); the
    "and" after "hundred" is optional ("seven hundred seventy seven"). Raises :class:`PhraseError`
    for an empty phrase, a word outside the vocabulary (naming it and listing the vocabulary) or
    words that do not form a number from 0 to 999."""
    words = [w for w in _SEPARATORS.split(text.strip().lower()) if w]
    if not words:
        raise PhraseError("empty phrase: write a number from zero to nine hundred and ninety nine")
    for word in words:
        if word not in TOKEN_ID or word == PAD:
            raise PhraseError(unknown_word_message(word))
    canonical: list[str] = []
    for i, word in enumerate(words):
        canonical.append(word)
        if word == "hundred" and i + 1 < len(words) and words[i + 1] != "and":
            canonical.append("and")
    words_to_number(canonical)  # raises PhraseError unless the words form a number
    return canonical


def encode(phrases: Iterable[Sequence[str]], length: int | None = None) -> torch.Tensor:
    """Token ids ``[N, length]`` (default: the longest phrase), right-padded with ``PAD_ID``."""
    phrases = [list(p) for p in phrases]
    length = length or max(len(p) for p in phrases)
    ids = torch.full((len(phrases), length), PAD_ID, dtype=torch.long)
    for row, words in enumerate(phrases):
        ids[row, : len(words)] = torch.tensor([TOKEN_ID[w] for w in words], dtype=torch.long)
    return ids


def decode(ids: torch.Tensor) -> list[str]:
    """One row of token ids back to its words, padding dropped."""
    return [VOCAB[i] for i in ids.tolist() if i != PAD_ID]


def number_tensors(numbers: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(tokens [N, 5], prefix_targets [N, 5], value [N, 1])`` for the given numbers.

    ``prefix_targets[i, t]`` is the value of the first ``t + 1`` words of number ``i`` (0 on padding).
    """
    phrases = [number_to_words(n) for n in numbers]
    tokens = encode(phrases, MAX_TOKENS)
    prefixes = torch.zeros(len(phrases), MAX_TOKENS)
    for row, words in enumerate(phrases):
        prefixes[row, : len(words)] = torch.tensor(prefix_values(words), dtype=torch.float32)
    value = torch.tensor(list(numbers), dtype=torch.float32).unsqueeze(-1)
    return tokens, prefixes, value


# --- the split -----------------------------------------------------------------------------------
def split_numbers(seed: int, train_size: int = 169, val_size: int = 200) -> dict[str, list[int]]:
    """The paper's split of 0..999 into train / val / test (169 / 200 / 631 by default).

    0..19 are always in train ("the numbers 0–19 in addition to a random sample from the rest of the
    interval, adjusted to make sure that each unique token is present at least once"). The rest of
    the interval is shuffled with a generator seeded by ``seed``; walking that order, train first takes
    every number that brings a word train has not seen yet (twenty..ninety, "hundred", "and"), then
    fills up in the same order; validation takes the next ``val_size`` numbers and test the rest.
    Each list is sorted.
    """
    always = list(range(len(ONES)))
    smallest = len(always) + len(TENS) + 2  # 0..19, then at worst one number per other word
    if train_size < smallest:
        raise ConfigError(
            f"task.train_size={train_size} is too small: train holds 0..19 plus a number for each of "
            f"twenty..ninety, 'hundred' and 'and', so it needs at least {smallest}"
        )
    if val_size < 1 or train_size + val_size >= MAX_NUMBER + 1:
        raise ConfigError(
            f"task.train_size={train_size} + task.val_size={val_size} must leave at least one test "
            f"number out of {MAX_NUMBER + 1} (and val_size must be >= 1)"
        )
    shuffled = torch.randperm(MAX_NUMBER + 1 - len(always), generator=generator(seed, "num2words", "split"))
    order = (shuffled + len(always)).tolist()
    train = set(always)
    seen = {w for n in always for w in number_to_words(n)}
    for n in order:
        words = set(number_to_words(n))
        if not words <= seen:
            train.add(n)
            seen |= words
    for n in order:
        if len(train) >= train_size:
            break
        train.add(n)
    rest = [n for n in order if n not in train]
    return {"train": sorted(train), "val": sorted(rest[:val_size]), "test": sorted(rest[val_size:])}
