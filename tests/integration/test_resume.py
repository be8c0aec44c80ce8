"""Checkpoints: an interrupted run resumed with ckpt_path=last ends exactly like an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]

RUN = [
    "task=static_arith",
    "task.op=sub",
    "unit=nau",
    "task.eval_size=500",
    "trainer.max_steps=400",
    "trainer.val_check_interval=50",
    "callbacks.progress_bar=null",
    "logger=none",
]


def launch(run_dir, *extra):
    env = dict(os.environ, WANDB_MODE="disabled")
    cmd = [sys.executable, "train.py", *RUN, f"hydra.run.dir={run_dir}", *extra]
    return subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_killed_run_resumes_to_the_same_final_metrics(tmp_path):
    full = launch(tmp_path / "full")
    interrupted = launch(tmp_path / "interrupted")
    last = tmp_path / "interrupted" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 240
    while not last.exists() and interrupted.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    assert full.wait(timeout=300) == 0, full.stdout.read()
    step = torch.load(last, weights_only=True)["global_step"]
    assert 0 < step < 400, "the kill should land mid-run"
    assert not (tmp_path / "interrupted" / "results.json").exists()

    resumed = launch(tmp_path / "interrupted", "ckpt_path=last")
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    a = json.loads((tmp_path / "full" / "results.json").read_text())
    b = json.loads((tmp_path / "interrupted" / "results.json").read_text())
    assert b["train_steps"] == a["train_steps"] == 400
    for name in ("val/mse", "test/interp/mse", "test/extrap/mse", "val/mse_best", "sparsity_error"):
        assert abs(a[name] - b[name]) <= 1e-6 * max(1.0, abs(a[name])), (name, a[name], b[name])


def test_resume_without_a_checkpoint_is_a_clear_error(run_script, tmp_path):
    result = run_script("train.py", *RUN, f"hydra.run.dir={tmp_path}", "ckpt_path=last", timeout=120)
    assert result.returncode == 2
    assert "ckpt_path=last but" in result.stderr and "last.ckpt does not exist" in result.stderr
