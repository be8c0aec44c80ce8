"""Shared fixtures: compose the real Hydra config, shrunk for tests, with outputs in tmp_path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from omegaconf import open_dict

os.environ.setdefault("WANDB_MODE", "disabled")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def kernel_cache(tmp_path_factory):
    """The compiled uniform kernel (``fast_uniform``) is cached in a test directory, not the user's
    ``~/.cache``; training subprocesses inherit the setting."""
    os.environ["NALU_SUITE_CACHE"] = str(tmp_path_factory.mktemp("nalu_suite_cache"))


@pytest.fixture(autouse=True)
def subnormals_restored():
    """Every test starts with IEEE subnormals, the process default: a training run
    (``runtime.configure_torch``, ``flush_denormal: true``) switches flush-to-zero on for the whole
    process, and hypothesis refuses to draw floats under it."""
    import torch

    torch.set_flush_denormal(False)
    yield


@pytest.fixture(scope="session")
def cfg_in():
    """``cfg_in(out_dir, *overrides)``: the config ``python train.py OVERRIDES`` runs, writing to out_dir.

    Session-scoped so module-scoped fixtures (one training run shared by several tests) can use it."""
    from nalu_suite.config import compose

    def _make(out_dir: Path, *overrides: str):
        cfg = compose(list(overrides))
        with open_dict(cfg):
            cfg.paths.output_dir = str(out_dir)
            cfg.paths.data_dir = str(Path(out_dir).parent / "data")
        return cfg

    return _make


@pytest.fixture
def make_cfg(tmp_path, cfg_in):
    """``make_cfg(*overrides)``: a quiet config (no progress bar, no logger) writing to tmp_path/run."""
    return lambda *overrides: cfg_in(
        tmp_path / "run", "callbacks.progress_bar=null", "logger=none", *overrides
    )


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


@pytest.fixture
def one_thread():
    """Run a test on one torch thread: tiny models train fastest so on this loaded 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def num2words_config():
    """``num2words_config(**overrides)``: a small num2words task config (a fresh dict each call)."""
    base = {
        "name": "num2words",
        "train_size": 169,
        "val_size": 200,
        "embedding_size": 16,
        "hidden_size": 16,
        "encoder": None,
        "head_input": "state",
        "head_layers": 1,
        "head_hidden": 4,
        "readout": "sum",
        "supervision": "every_token",
        "output_scale": 100.0,
        "state_noise": 2.0,
    }
    return lambda **overrides: base | overrides
