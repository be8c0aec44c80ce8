"""A diverging run stops with a message naming the step and the unit, and keeps its last good checkpoint."""

from __future__ import annotations

import torch


def test_divergence_names_step_unit_and_checkpoint(run_script, tmp_path):
    result = run_script(
        "train.py",
        "task=static_arith",
        "unit=linear",
        "optim.lr=1e12",
        "task.eval_size=200",
        "trainer.val_check_interval=1",
        "callbacks.progress_bar=none",
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
