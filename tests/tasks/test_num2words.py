"""Language-to-number task (paper §4.3): words <-> numbers, the normaliser, the split, the model, learning."""

from __future__ import annotations

import random

import pytest
import torch

from nalu_suite.errors import ConfigError
from nalu_suite.tasks import build_task
from nalu_suite.tasks.num2words_data import (
    MAX_TOKENS,
    PAD_ID,
    TOKEN_ID,
    VOCAB,
    WORDS,
    PhraseError,
    encode,
    normalize_phrase,
    number_tensors,
    number_to_words,
    prefix_values,
    split_numbers,
    words_to_number,
)

LSTM_UNIT = {"name": "lstm", "first": "lstm", "second": "linear", "first_options": {}, "second_options": {}}
NAU_UNIT = {"name": "nau", "first": "nau", "second": "nau", "first_options": {}, "second_options": {}}


# --- vocabulary and the word parser --------------------------------------------------------------
def test_vocabulary_is_padding_then_the_thirty_number_words():
    assert VOCAB[PAD_ID] == "<pad>" and PAD_ID == 0
    assert len(WORDS) == 30 and len(set(WORDS)) == 30
    assert WORDS[:3] == ("zero", "one", "two") and WORDS[19] == "nineteen"
    assert {"twenty", "ninety", "hundred", "and"} <= set(WORDS)


@pytest.mark.parametrize(
    "number, phrase",
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (20, "twenty"),
        (42, "forty two"),
        (100, "one hundred"),
        (105, "one hundred and five"),
        (110, "one hundred and ten"),
        (700, "seven hundred"),
        (777, "seven hundred and seventy seven"),
        (999, "nine hundred and ninety nine"),
    ],
)
def test_number_to_words_writes_british_english(number, phrase):
    assert " ".join(number_to_words(number)) == phrase


def test_parser_reads_back_every_number_from_0_to_999():
    phrases = [tuple(number_to_words(n)) for n in range(1000)]
    assert len(set(phrases)) == 1000
    assert max(len(p) for p in phrases) == MAX_TOKENS
    for n, words in enumerate(phrases):
        assert words_to_number(words) == n
        assert prefix_values(words)[-1] == n


def test_prefix_values_follow_the_words():
    assert prefix_values(["seven", "hundred", "and", "seventy", "seven"]) == [7, 700, 700, 770, 777]
    assert prefix_values(["forty", "two"]) == [40, 42]


@pytest.mark.parametrize(
    "phrase",
    ["seven seven", "hundred", "one hundred and", "zero hundred", "twenty ten", "nine hundred hundred"],
)
def test_parser_rejects_word_sequences_that_are_no_number(phrase):
    with pytest.raises(PhraseError, match="not a number from 0 to 999"):
        words_to_number(phrase.split())


@pytest.mark.parametrize("n", [-1, 1000, 3.0])
def test_number_to_words_rejects_numbers_outside_the_range(n):
    with pytest.raises(ValueError, match="0 to 999"):
        number_to_words(n)


# --- the normaliser ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, canonical",
    [
        ("Seven Hundred and Seventy Seven", "seven hundred and seventy seven"),
        ("seven hundred seventy-seven", "seven hundred and seventy seven"),
        ("  FORTY-TWO ", "forty two"),
        ("nine hundred\tninety - nine", "nine hundred and ninety nine"),
        ("one hundred", "one hundred"),
        ("Zero", "zero"),
    ],
)
def test_normaliser_accepts_case_hyphens_and_a_missing_and(text, canonical):
    assert " ".join(normalize_phrase(text)) == canonical


def test_normaliser_round_trips_every_number_in_any_surface_form():
    rng = random.Random(0)
    for n in range(1000):
        words = [w for w in number_to_words(n) if w != "and" or rng.random() < 0.5]
        text = "-".join(w.upper() if rng.random() < 0.3 else w for w in words)
        assert normalize_phrase(text) == number_to_words(n)


def test_unknown_word_is_an_error_naming_it_and_listing_the_vocabulary():
    with pytest.raises(PhraseError) as err:
        normalize_phrase("one thousand and two")
    message = str(err.value)
    assert "'thousand'" in message
    assert all(word in message for word in WORDS)


@pytest.mark.parametrize("text", ["", "   ", "-", "<pad>"])
def test_empty_phrases_and_the_padding_token_are_errors(text):
    with pytest.raises(PhraseError, match="empty phrase|unknown word"):
        normalize_phrase(text)


def test_encode_right_pads_with_the_padding_id():
    ids = encode([["forty", "two"], ["seven"]])
    assert ids.tolist() == [[TOKEN_ID["forty"], TOKEN_ID["two"]], [TOKEN_ID["seven"], PAD_ID]]


# --- the split ----------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_split_has_the_papers_sizes_and_properties(seed):
    split = split_numbers(seed)
    train, val, test = (set(split[k]) for k in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (169, 200, 631)
    assert train | val | test == set(range(1000))
    assert not (train & val or train & test or val & test)
    assert set(range(20)) <= train
    assert {w for n in train for w in number_to_words(n)} == set(WORDS)


def test_split_is_a_deterministic_function_of_the_seed():
    assert split_numbers(3) == split_numbers(3)
    assert split_numbers(3)["train"] != split_numbers(4)["train"]


def test_split_covers_every_word_even_in_the_smallest_train_set():
    split = split_numbers(0, train_size=30, val_size=100)
    assert len(split["train"]) == 30 and len(split["val"]) == 100 and len(split["test"]) == 870
    assert {w for n in split["train"] for w in number_to_words(n)} == set(WORDS)


@pytest.mark.parametrize("train_size, val_size", [(29, 200), (169, 831), (169, 0)])
def test_split_sizes_that_cannot_work_are_config_errors(train_size, val_size):
    with pytest.raises(ConfigError, match="train_size"):
        split_numbers(0, train_size, val_size)


# --- task config and supervision ----------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"readout": "mean"}, "task.readout='mean' is not valid; choose one of: state, sum, affine"),
        ({"supervision": "all"}, "task.supervision"),
        ({"head_input": "word"}, "task.head_input"),
        ({"head_layers": 3}, "task.head_layers"),
        ({"hidden_size": 0}, "task.hidden_size"),
        ({"encoder": "transformer"}, "task.encoder='transformer'"),
        ({"state_noise": -1.0}, "task.state_noise"),
        ({"output_scale": 0}, "task.output_scale"),
    ],
)
def test_bad_task_values_are_config_errors_naming_the_value(overrides, match, num2words_config):
    with pytest.raises(ConfigError, match=match):
        build_task(num2words_config(**overrides), LSTM_UNIT, 0)


def test_two_layer_head_needs_an_arithmetic_unit_as_first_layer(num2words_config):
    with pytest.raises(ConfigError, match="unit.first='lstm' is not an arithmetic unit"):
        build_task(num2words_config(head_layers=2), LSTM_UNIT, 0)
    model = build_task(num2words_config(head_layers=2), NAU_UNIT, 0).build_model()
    assert [m.in_features for m in model.head] == [16, 4]


def test_encoder_comes_from_unit_first_when_it_is_a_recurrent_cell(num2words_config):
    gru = LSTM_UNIT | {"name": "gru", "first": "gru"}
    assert build_task(num2words_config(), gru, 0).encoder == "gru"
    assert build_task(num2words_config(), NAU_UNIT, 0).encoder == "lstm"
    assert build_task(num2words_config(encoder="rnn_tanh"), gru, 0).encoder == "rnn_tanh"


def test_strict_supervision_skips_prefixes_that_spell_held_out_numbers(num2words_config):
    task = build_task(num2words_config(supervision="every_token_strict"), LSTM_UNIT, 0)
    held_out = set(task.splits["val"]) | set(task.splits["test"])
    tokens, prefixes, supervised, value = task.split_tensors("train")
    masked = 0
    for row in range(len(tokens)):
        words = [VOCAB[i] for i in tokens[row].tolist() if i != PAD_ID]
        assert prefixes[row, len(words) - 1] == value[row, 0]
        assert supervised[row, len(words) - 1]  # the whole phrase always counts
        assert not supervised[row, len(words) :].any()
        for t in range(len(words) - 1):
            try:
                spelled = words_to_number(words[: t + 1])
            except PhraseError:
                spelled = None
            assert bool(supervised[row, t]) == (spelled not in held_out)
            masked += spelled in held_out
    assert masked > 0  # e.g. "forty" of "forty two" when 40 is a test number


def test_every_token_supervision_uses_every_word_and_test_novel_excludes_trained_beginnings(num2words_config):
    task = build_task(num2words_config(supervision="every_token"), LSTM_UNIT, 0)
    tokens, _, supervised, _ = task.split_tensors("train")
    assert supervised.equal(tokens != PAD_ID)
    train = task.splits["train"]
    beginnings = {" ".join(number_to_words(n)[:t]) for n in train for t in range(1, MAX_TOKENS)}
    novel = task.numbers("test_novel")
    assert set(novel) < set(task.splits["test"])
    assert novel == [n for n in task.splits["test"] if " ".join(number_to_words(n)) not in beginnings]
    assert 500 < len(novel) < 631  # seed 0: 45 test phrases begin training phrases ("seven hundred", "forty")


def test_final_supervision_uses_the_last_word_only(num2words_config):
    task = build_task(num2words_config(supervision="final"), LSTM_UNIT, 0)
    tokens, _, supervised, _ = task.split_tensors("train")
    assert supervised.sum(dim=1).tolist() == [1] * len(tokens)
    assert supervised.equal(supervised & (tokens != PAD_ID))


# --- the model ----------------------------------------------------------------------------------
def test_sum_readout_holds_the_final_value_over_padding_and_noise_only_in_training(num2words_config):
    torch.manual_seed(0)
    model = build_task(num2words_config(), LSTM_UNIT, 0).build_model()
    tokens, _, _ = number_tensors([7, 42, 777])
    model.eval()
    per_token = model(tokens)
    assert per_token.shape == (3, MAX_TOKENS)
    assert torch.equal(per_token[0, 1:], per_token[0, :1].expand(4))  # "seven": padding adds nothing
    assert torch.equal(model.final(tokens)[:, 0], per_token[:, -1])
    assert torch.equal(model(tokens), per_token)  # evaluation: no state noise
    model.train()
    assert not torch.equal(model(tokens), per_token)


def test_state_readout_reads_the_head_on_the_last_word(num2words_config):
    torch.manual_seed(0)
    model = build_task(num2words_config(readout="state"), LSTM_UNIT, 0).build_model().eval()
    tokens, _, _ = number_tensors([7, 777])
    assert model.final(tokens)[:, 0].tolist() == [model(tokens)[0, 0].item(), model(tokens)[1, 4].item()]


def test_affine_readout_multiplies_then_adds_and_holds_over_padding():
    from nalu_suite.tasks.num2words import WordsToNumberModel

    log_100 = torch.log(torch.tensor(100.0)).item()
    # seven, hundred, and, seventy, seven (in units of 100), then padding; -3 means "multiply by exactly 1"
    out = torch.tensor([[[-3.0, 0.07], [log_100, 0.0], [-3.0, 0.0], [-1.0, 0.7], [0.0, 0.07], [5.0, 9.0]]])
    words = torch.tensor([[True] * 5 + [False]])
    y = WordsToNumberModel.multiply_add(out, words)
    assert torch.allclose(y, torch.tensor([[0.07, 7.0, 7.0, 7.7, 7.77, 7.77]]))


def test_a_short_training_run_learns(one_thread, num2words_config):
    """100 full-batch Adam steps of a small model cut the validation MAE far below the untrained one."""
    torch.manual_seed(0)
    task = build_task(num2words_config(), LSTM_UNIT, 0)
    model = task.build_model()
    train_batch = task.split_tensors("train")
    val_batch = task.split_tensors("val")

    def val_mae() -> float:
        model.eval()
        with torch.no_grad():
            pred, target = task.predict(model, val_batch)
        model.train()
        return (pred - target).abs().mean().item()

    before = val_mae()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(100):
        optimizer.zero_grad()
        task.loss(model, train_batch).backward()
        optimizer.step()
    after = val_mae()
    assert before > 300  # the untrained model is far off (the mean number is about 500)
    assert after < 60  # measured: about 30


def test_preview_shows_phrases_with_their_targets(num2words_config):
    rows = build_task(num2words_config(), LSTM_UNIT, 0).preview(25)
    assert len(rows) == 25
    for row in rows:
        assert words_to_number(row["text"].split()) == row["target"]
        assert row["prefix_targets"][-1] == row["target"]
        assert [VOCAB[i] for i in row["inputs"]] == row["text"].split()


def test_make_figures_writes_the_per_token_png(tmp_path, num2words_config):
    task = build_task(num2words_config(), LSTM_UNIT, 0)
    numbers = task.figure_numbers()
    assert len(numbers) == 4 and set(numbers) <= set(task.splits["test"])
    (path,) = task.make_figures(task.build_model(), tmp_path)
    assert path.parent == tmp_path and path.suffix == ".png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
