"""Shared fixtures: compose the real Hydra config, shrunk for tests, with outputs in tmp_path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from omegaconf import open_dict

os.environ.setdefault("WANDB_MODE", "disabled")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def make_cfg(tmp_path):
    """``make_cfg(*overrides)``: the config ``python train.py OVERRIDES`` would run, writing to tmp_path."""
    from nalu_suite.config import compose

    def _make(*overrides: str):
        cfg = compose(["callbacks.progress_bar=none", "logger=none", *overrides])
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / "run")
            cfg.paths.data_dir = str(tmp_path / "data")
        return cfg

    return _make


@pytest.fixture
def run_script():
    """Run a repository script or module in a subprocess; returns the CompletedProcess."""
    import subprocess

    def _run(*args: str, timeout: float = 300, cwd: Path = ROOT):
        env = dict(os.environ, WANDB_MODE="disabled", PYTHONUNBUFFERED="1")
        return subprocess.run(
            [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )

    return _run
