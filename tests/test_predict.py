"""``nalu-predict CKPT PHRASE...``: output format, normalisation and one-line errors."""

from __future__ import annotations

import argparse

import pytest
import torch

from nalu_suite.predict import load_model, main
from nalu_suite.tasks import build_task
from nalu_suite.tasks.num2words_data import encode, normalize_phrase

UNIT = {"name": "lstm", "first": "lstm", "second": "linear", "first_options": {}, "second_options": {}}


def save_checkpoint(path, task: dict, model: torch.nn.Module | None = None) -> None:
    """A checkpoint laid out like Lightning's for ``ArithmeticSystem``: plain hyper-parameters, the model's
    weights under ``model.``, other entries (metric states, loops) beside them."""
    state = {f"model.{k}": v for k, v in (model.state_dict() if model else {}).items()}
    state["metrics.val__val.sse"] = torch.zeros((), dtype=torch.float64)
    torch.save(
        {
            "epoch": 0,
            "global_step": 10,
            "pytorch-lightning_version": "2.6.6",
            "state_dict": state,
            "hyper_parameters": {"task": task, "unit": UNIT, "optim": {"name": "adam"}, "seed": 0},
            "loops": {"fit_loop": {"state_dict": {}}},
        },
        path,
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, num2words_config):
    """A num2words checkpoint of an untrained model with its own (seeded) weights; returns (path, model)."""
    task = num2words_config(embedding_size=8, hidden_size=8)
    torch.manual_seed(123)
    model = build_task(task, UNIT, 0).build_model().eval()
    path = tmp_path_factory.mktemp("ckpt") / "best.ckpt"
    save_checkpoint(path, task, model)
    return path, model


def expected(model, text: str) -> list[float]:
    words = normalize_phrase(text)
    with torch.no_grad():
        return model(encode([words]))[0, : len(words)].tolist()


def test_prints_phrase_tab_rounded_prediction_per_phrase(checkpoint, capsys):
    path, model = checkpoint
    phrases = ["seven hundred and seventy seven", "Forty-two", "zero"]
    assert main([str(path), *phrases]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{p}\t{round(expected(model, p)[-1])}" for p in phrases]


def test_normalised_spellings_give_the_same_prediction(checkpoint, capsys):
    path, _ = checkpoint
    main([str(path), "seven hundred and seventy seven", "SEVEN hundred seventy-seven"])
    first, second = (line.split("\t")[1] for line in capsys.readouterr().out.splitlines())
    assert first == second


def test_per_token_prints_the_prediction_after_every_word(checkpoint, capsys):
    path, model = checkpoint
    assert main([str(path), "--per-token", "seven hundred seventy-seven"]) == 0
    lines = capsys.readouterr().out.splitlines()
    values = expected(model, "seven hundred seventy-seven")
    assert lines[0] == f"seven hundred seventy-seven\t{round(values[-1])}"
    assert lines[1:] == [
        f"  {w}\t{v:.2f}"
        for w, v in zip(["seven", "hundred", "and", "seventy", "seven"], values, strict=True)
    ]


def test_load_model_rebuilds_the_saved_weights(checkpoint):
    path, model = checkpoint
    task, loaded = load_model(path)
    assert task.name == "num2words" and not loaded.training
    tokens = encode([["nine", "hundred", "and", "one"]])
    with torch.no_grad():
        assert torch.equal(loaded(tokens), model(tokens))


def assert_one_line_error(capsys, *needles: str) -> None:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    "phrase, needles",
    [
        ("one thousand", ["'thousand'", "vocabulary is: zero, one"]),
        ("seven hundred and seventy sevn", ["'sevn'"]),
        ("", ["empty phrase"]),
        ("   ", ["empty phrase"]),
        ("seven seven", ["'seven seven'", "not a number from 0 to 999"]),
    ],
)
def test_bad_phrases_end_with_one_line_error_and_status_2(checkpoint, capsys, phrase, needles):
    path, _ = checkpoint
    assert main([str(path), "forty two", phrase]) == 2
    assert_one_line_error(capsys, *needles)


def test_missing_checkpoint_is_an_error_naming_the_file(tmp_path, capsys):
    missing = tmp_path / "nope.ckpt"
    assert main([str(missing), "forty two"]) == 2
    assert_one_line_error(capsys, str(missing), "does not exist")


def test_file_that_is_no_checkpoint_is_an_error(tmp_path, capsys):
    junk = tmp_path / "notes.ckpt"
    junk.write_text("not a checkpoint")
    assert main([str(junk), "forty two"]) == 2
    assert_one_line_error(capsys, str(junk), "not a readable PyTorch checkpoint")


def test_checkpoint_with_pickled_code_is_refused(tmp_path, capsys, num2words_config):
    path = tmp_path / "code.ckpt"
    payload = argparse.Namespace(note="unpickling this needs a class import, which weights_only=True forbids")
    task = num2words_config(embedding_size=8, hidden_size=8)
    torch.save({"hyper_parameters": {"task": task}, "state_dict": {}, "payload": payload}, path)
    assert main([str(path), "forty two"]) == 2
    assert_one_line_error(capsys, "not a readable PyTorch checkpoint", "weights_only=True")


def test_checkpoint_of_another_task_is_an_error_naming_both_tasks(tmp_path, capsys):
    path = tmp_path / "static.ckpt"
    save_checkpoint(path, {"name": "static_arith", "op": "add"})
    assert main([str(path), "forty two"]) == 2
    assert_one_line_error(capsys, "'static_arith'", "'num2words'")


def test_plain_tensor_file_is_not_a_nalu_suite_checkpoint(tmp_path, capsys):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    assert main([str(path), "forty two"]) == 2
    assert_one_line_error(capsys, "not a nalu-suite checkpoint")


def test_predict_does_not_import_lightning(checkpoint, run_script):
    path, _ = checkpoint
    code = (
        "import sys; from nalu_suite.predict import main; rc = main([sys.argv[1], 'forty two']); "
        "assert rc == 0 and 'lightning' not in sys.modules, [m for m in sys.modules if 'lightning' in m]"
    )
    result = run_script("-c", code, str(path), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("forty two\t")


@pytest.mark.slow
def test_reads_a_checkpoint_written_by_train(make_cfg, tmp_path, capsys):
    """A real Lightning checkpoint from ``train(cfg)`` loads with weights_only=True and predicts."""
    from nalu_suite.train import train

    cfg = make_cfg(
        "task=num2words",
        "task.embedding_size=8",
        "task.hidden_size=8",
        "trainer.max_steps=20",
        "trainer.val_check_interval=10",
    )
    results = train(cfg)
    assert {"train/mae", "val/mae", "test/mae", "test/exact"} <= results.keys()
    best = tmp_path / "run" / "checkpoints" / "best.ckpt"
    capsys.readouterr()  # drop train's own output
    assert main([str(best), "--per-token", "nine hundred and ninety nine"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("nine hundred and ninety nine\t") and len(lines) == 6
    assert (tmp_path / "run" / "per_token_predictions.png").exists()
