"""Multi-process training (Lightning DDP over gloo on CPU) computes what a single process computes.

Lightning's `ddp` strategy re-runs the command line in each process, so this launches train.py as a
subprocess. The global batch is split across processes (see ``BatchStream.shard``) and gradients are
averaged, so a 2-process run follows the 1-process run up to float rounding; we allow 1e-4 relative.
"""

from __future__ import annotations

import json

import pytest

RUN = [
    "task=static_arith",
    "task.op=add",
    "unit=nau",
    "task.eval_size=500",
    "trainer.max_steps=150",
    "trainer.val_check_interval=50",
    "callbacks.progress_bar=null",
    "logger=none",
]


def test_two_processes_match_one_process(run_script, tmp_path):
    single = run_script("train.py", *RUN, f"hydra.run.dir={tmp_path / 'one'}", timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    double = run_script("train.py", *RUN, "trainer=ddp_cpu", f"hydra.run.dir={tmp_path / 'two'}", timeout=300)
    assert double.returncode == 0, double.stderr[-2000:]
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert one["train_steps"] == two["train_steps"] == 150
    for name in ("train/loss", "val/mse", "test/interp/mse", "test/extrap/mse", "sparsity_error"):
        assert two[name] == pytest.approx(one[name], rel=1e-4), name
    assert not (tmp_path / "two" / "results_1.json").exists()  # only rank 0 writes results
