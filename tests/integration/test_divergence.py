"""A diverging run stops with a message naming the step and the unit, and keeps its last good checkpoint."""

from __future__ import annotations

import json

import torch


def test_divergence_names_step_unit_and_checkpoint(run_script, tmp_path):
    result = run_script(
        "train.py",
        "task=static_arith",
        "unit=linear",
        "optim.lr=1e12",
        "task.eval_size=200",
        "trainer.val_check_interval=1",
        "callbacks.progress_bar=null",
        "logger=none",
        f"hydra.run.dir={tmp_path}",
        timeout=300,
    )
    assert result.returncode == 3
    last = tmp_path / "checkpoints" / "last.ckpt"
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("training diverged: loss became ")
    assert " at step 1 with unit 'linear' (task static_arith)" in message
    assert message.endswith(f"the last good checkpoint is {last}")
    state = torch.load(last, weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values())
    assert not (tmp_path / "results.json").exists()


def test_a_diverging_sweep_job_is_recorded_as_a_failure_and_the_sweep_goes_on(run_script, tmp_path):
    from nalu_suite.report import report

    result = run_script(
        "train.py",
        "-m",
        "task=static_arith",
        "unit=linear",
        "optim.lr=1e12,1e-2",
        "task.op=mul",
        "task.eval_size=200",
        "trainer.max_steps=30",
        "trainer.val_check_interval=10",
        "callbacks.progress_bar=null",
        "logger=none",
        f"hydra.sweep.dir={tmp_path}",
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "training diverged" in result.stderr
    diverged = json.loads((tmp_path / "0" / "results.json").read_text())
    assert diverged["diverged"] == 1.0 and diverged["test/extrap/success"] == 0.0
    assert "test/extrap/mse" in json.loads((tmp_path / "1" / "results.json").read_text())
    table = report(tmp_path, ["test/extrap/success"], ["task.op"])
    assert "| task.op=mul | 2 | 0% " in table
    assert "1 run(s) diverged" in table
