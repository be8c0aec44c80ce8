"""Checkpoints of a finished run: last.ckpt is the latest state, a moved run directory keeps updating
best.ckpt/last.ckpt, and resuming with another config is refused."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import torch

# NALU on division with a huge learning rate: the validation error stops improving after the first
# validation (step 50), so best.ckpt stays at step 50 while training goes on
RUN = [
    "train.py",
    "task=static_arith",
    "task.op=div",
    "unit=nalu",
    "optim.lr=1e6",
    "task.eval_size=200",
    "trainer.val_check_interval=50",
    "callbacks.progress_bar=null",
]


def step_of(path) -> int:
    return int(torch.load(path, weights_only=True)["global_step"])


def checkpoint_state(path) -> dict:
    (state,) = torch.load(path, weights_only=True)["callbacks"].values()
    return state


@pytest.fixture(scope="module")
def finished(tmp_path_factory, run_script) -> tuple:
    run_dir = tmp_path_factory.mktemp("finished")
    result = run_script(*RUN, "trainer.max_steps=100", f"hydra.run.dir={run_dir}", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


@pytest.fixture(scope="module")
def run_script():
    """conftest's ``run_script``, module-scoped so that one finished run serves every test here."""
    import os
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]

    def _run(*args: str, timeout: float = 300):
        env = dict(os.environ, WANDB_MODE="disabled", PYTHONUNBUFFERED="1")
        return subprocess.run(
            [sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout
        )

    return _run


def test_last_ckpt_holds_the_latest_state_not_the_last_improvement(finished):
    ckpts = finished / "checkpoints"
    assert step_of(ckpts / "best.ckpt") == 50  # the only improvement
    assert step_of(ckpts / "last.ckpt") == 100
    assert checkpoint_state(ckpts / "last.ckpt")["best_model_path"] == str((ckpts / "best.ckpt").resolve())


def test_a_copied_run_directory_resumes_into_its_own_best_and_last(finished, run_script, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(finished, copy)
    result = run_script(*RUN, "trainer.max_steps=200", "ckpt_path=last", f"hydra.run.dir={copy}", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ckpts = (copy / "checkpoints").resolve()
    assert sorted(p.name for p in ckpts.iterdir()) == ["best.ckpt", "last.ckpt"]  # no best-v1/last-v1
    assert step_of(ckpts / "last.ckpt") == 200
    # the best score came along: no later validation beat step 50's, so best.ckpt was not rewritten
    assert step_of(ckpts / "best.ckpt") == 50
    state = checkpoint_state(ckpts / "last.ckpt")
    assert state["dirpath"] == str(ckpts)
    assert state["best_model_path"] == str(ckpts / "best.ckpt")
    assert state["last_model_path"] == str(ckpts / "last.ckpt")
    assert step_of(finished / "checkpoints" / "last.ckpt") == 100  # the original is untouched


def test_resuming_with_another_config_is_refused_naming_the_keys(finished, run_script):
    before = (finished / "checkpoints" / "last.ckpt").read_bytes()
    result = run_script(
        *RUN, "trainer.max_steps=100", "task.op=mul", "seed=3", "ckpt_path=last",
        f"hydra.run.dir={finished}", timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("config error:")]
    assert "task.op='div' in the checkpoint, 'mul' now" in line
    assert "seed=0 in the checkpoint, 3 now" in line
    assert "unit." not in line and "optim." not in line
    assert (finished / "checkpoints" / "last.ckpt").read_bytes() == before
