"""eval.py: evaluate a checkpoint with changed task values; bad checkpoints end with a one-line error."""

from __future__ import annotations

import json

import pytest
import torch

from nalu_suite.errors import ConfigError
from nalu_suite.evaluate import evaluate, load_checkpoint
from nalu_suite.train import train


@pytest.fixture(scope="module")
def recurrent_run(tmp_path_factory, cfg_in):
    out = tmp_path_factory.mktemp("recurrent")
    cfg = cfg_in(
        out,
        "task=recurrent_arith",
        "task.op=add",
        "unit=nau",
        "task.eval_size=300",
        "task.extrap_eval_size=20",
        "task.extrap_length=100",
        "trainer.max_steps=300",
        "trainer.val_check_interval=100",
        "callbacks.progress_bar=null",
        "logger=none",
    )
    return out, train(cfg)


def test_eval_reproduces_the_training_run_test_metrics(recurrent_run, tmp_path):
    out, results = recurrent_run
    got = evaluate(str(out / "checkpoints" / "best.ckpt"), [], str(tmp_path))
    assert got["test/interp/mse"] == pytest.approx(results["test/interp/mse"], rel=1e-5)
    assert got["test/extrap/mse"] == pytest.approx(results["test/extrap/mse"], rel=1e-5)
    assert json.loads((tmp_path / "results.json").read_text()) == pytest.approx(got, nan_ok=True)


def test_eval_on_longer_sequences_uses_the_new_length(recurrent_run, tmp_path):
    out, results = recurrent_run
    got = evaluate(
        str(out / "checkpoints" / "best.ckpt"),
        ["task.extrap_length=400", "task.extrap_eval_size=20"],
        str(tmp_path),
    )
    # sums grow with the length, so an imperfect accumulator's error grows too (interpolation is unchanged)
    assert got["test/interp/mse"] == pytest.approx(results["test/interp/mse"], rel=1e-5)
    assert got["test/extrap/mse"] != pytest.approx(results["test/extrap/mse"], rel=1e-3)


def test_bad_checkpoints_give_one_line_errors(tmp_path, run_script):
    with pytest.raises(ConfigError, match="no such file"):
        load_checkpoint(tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="junk.ckpt is not a readable PyTorch checkpoint"):
        load_checkpoint(junk)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ConfigError, match="not a nalu-suite checkpoint"):
        load_checkpoint(foreign)
    result = run_script("eval.py", f"ckpt_path={junk}", timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {junk} is not a readable PyTorch checkpoint (UnpicklingError)"
    ]


def test_eval_rejects_an_unknown_task_key(recurrent_run):
    out, _ = recurrent_run
    with pytest.raises(Exception, match="extrap_lenght"):
        evaluate(str(out / "checkpoints" / "best.ckpt"), ["task.extrap_lenght=400"])
