"""Checkpoints: an interrupted run (kill -9 or Ctrl-C) resumed with ckpt_path=last ends exactly like an
uninterrupted one, with the same logged history (csv/metrics.csv)."""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]

RUN = [
    "task=static_arith",
    "task.op=sub",
    "unit=nau",
    "task.eval_size=500",
    "trainer.max_steps=400",
    "trainer.val_check_interval=50",
    "trainer.log_every_n_steps=10",
    "callbacks.progress_bar=null",
]


def launch(run_dir, *extra, command=None):
    env = dict(os.environ, WANDB_MODE="disabled", PYTHONUNBUFFERED="1")
    cmd = command or [sys.executable, "train.py", *RUN, f"hydra.run.dir={run_dir}", *extra]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The uninterrupted run, started once; ``full()`` waits for it and returns its directory."""
    run_dir = tmp_path_factory.mktemp("resume") / "full"
    process = launch(run_dir)

    def wait() -> Path:
        out = process.communicate(timeout=300)[0]
        assert process.returncode == 0, out
        return run_dir

    yield wait
    if process.poll() is None:
        process.kill()
        process.wait()


def interrupt_after_first_checkpoint(run_dir, sig):
    """Start the run, send ``sig`` once its first checkpoint exists; return the process (ended)."""
    process = launch(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    process.send_signal(sig)
    out = process.communicate(timeout=120)[0]
    step = torch.load(last, weights_only=True)["global_step"]
    assert 0 < step < 400, "the interruption should land mid-run"
    assert not (run_dir / "results.json").exists()
    return process, out


def metric_rows(run_dir) -> list[dict[str, float]]:
    with open(run_dir / "csv" / "metrics.csv", newline="") as file:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(file)]


def assert_same_run(a_dir, b_dir):
    a = json.loads((a_dir / "results.json").read_text())
    b = json.loads((b_dir / "results.json").read_text())
    assert b["train_steps"] == a["train_steps"] == 400
    for name in ("val/mse", "test/interp/mse", "test/extrap/mse", "val/mse_best", "sparsity_error"):
        assert abs(a[name] - b[name]) <= 1e-6 * max(1.0, abs(a[name])), (name, a[name], b[name])
    # the logged history survives the resume: every row of the uninterrupted run, once, same values
    rows_a, rows_b = metric_rows(a_dir), metric_rows(b_dir)
    assert [(r["step"], sorted(r)) for r in rows_b] == [(r["step"], sorted(r)) for r in rows_a]
    assert sum("train/loss" in r for r in rows_a) == 40 and sum("val/mse" in r for r in rows_a) == 8
    for ra, rb in zip(rows_a, rows_b, strict=True):
        for name, value in ra.items():
            if name != "epoch":
                assert abs(value - rb[name]) <= 1e-6 * max(1.0, abs(value)), (ra["step"], name)


def test_killed_run_resumes_to_the_same_final_metrics_and_history(full, tmp_path):
    run_dir = tmp_path / "interrupted"
    interrupt_after_first_checkpoint(run_dir, signal.SIGKILL)
    resumed = launch(run_dir, "ckpt_path=last")
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    assert_same_run(full(), run_dir)


def test_ctrl_c_prints_the_command_that_resumes_the_run(full, tmp_path):
    run_dir = tmp_path / "interrupted"
    process, out = interrupt_after_first_checkpoint(run_dir, signal.SIGINT)
    assert process.returncode == 130, out
    (hint,) = [line for line in out.splitlines() if line.startswith("interrupted; resume with: ")]
    command = shlex.split(hint.removeprefix("interrupted; resume with: "))
    assert command == ["python", "train.py", *RUN, "ckpt_path=last", f"hydra.run.dir={run_dir.resolve()}"]
    resumed = launch(run_dir, command=[sys.executable, *command[1:]])
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    assert_same_run(full(), run_dir)


def test_resume_without_a_checkpoint_is_a_clear_error(run_script, tmp_path):
    result = run_script("train.py", *RUN, f"hydra.run.dir={tmp_path}", "ckpt_path=last", timeout=120)
    assert result.returncode == 2
    assert "ckpt_path=last but" in result.stderr and "last.ckpt does not exist" in result.stderr
