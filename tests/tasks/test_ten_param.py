"""The NAU paper's 10-parameter task (``task=ten_param``) and ``nalu-bench ten_param``."""

from __future__ import annotations

import pytest
import torch

from nalu_suite.errors import ConfigError
from nalu_suite.rng import generator
from nalu_suite.tasks.ten_param import TenParamTask

UNIT = {"name": "nmu", "first": "nau", "second": "nmu"}


def ten_cfg(**overrides):
    base = {
        "name": "ten_param",
        "op": "mul",
        "input_size": 4,
        "hidden_size": 2,
        "subset_ratio": 0.5,
        "overlap_ratio": 0.0,
        "interp_range": [1, 2],
        "extrap_range": [2, 6],
        "eval_size": 1000,
    }
    return base | overrides


def test_the_target_is_the_papers_function_for_every_seed():
    for seed in (0, 7):
        task = TenParamTask(ten_cfg(), UNIT, seed)
        x, y = task.sample(generator(seed, "t"), 100, [1, 2])
        expected = (x[:, 0] + x[:, 1]) * x.sum(-1)
        torch.testing.assert_close(y.squeeze(-1), expected)


def test_nau_then_nmu_has_ten_weights_and_the_exact_solution_succeeds():
    task = TenParamTask(ten_cfg(), UNIT, 0)
    model = task.build_model()
    assert sum(p.numel() for p in model.parameters()) == 10
    with torch.no_grad():
        model.first.W.copy_(torch.tensor([[1.0, 1, 0, 0], [1, 1, 1, 1]]))
        model.second.W.fill_(1.0)
        x, y = task.fixed_set("test/extrap")
        assert float((model(x) - y).pow(2).mean()) < task.success_threshold()
        model.first.W[0, 2] = 1e-3  # one weight off by 1e-3: not a success
        assert float((model(x) - y).pow(2).mean()) > task.success_threshold()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"op": "add"}, "task.op (the 10-parameter task is a product)='add'"),
        ({"input_size": 5}, "=5 is not valid"),
        ({"second_step": 0}, "task.second_step=0 must be a number in (0, 1]"),
        ({"second_step": 2.0}, "task.second_step=2.0 must be a number in (0, 1]"),
    ],
)
def test_other_ops_and_sizes_are_rejected_with_the_choice(change, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TenParamTask(ten_cfg(**change), UNIT, 0)


def test_second_step_scales_the_nmu_steps_of_whitened_adam_and_not_the_naus():
    from nalu_suite.optim import build_optimizer, whitening_pairs

    moves = {}
    for step in (1.0, 0.1):
        task = TenParamTask(ten_cfg(second_step=step), UNIT, 0)
        torch.manual_seed(0)
        model = task.build_model()
        before = [p.detach().clone() for p in (model.first.W, model.second.W)]
        pairs = whitening_pairs(model.named_parameters(), task.input_whitening())
        optim = {"name": "adam", "lr": 1e-3, "whiten_from": 0}
        optimizer = build_optimizer(list(model.parameters()), optim, 10, pairs)
        x, y = task.sample(generator(0, "t"), 64, [1, 2])
        (model(x) - y).pow(2).mean().backward()
        optimizer.step()
        moves[step] = [p.detach() - b for p, b in zip((model.first.W, model.second.W), before, strict=True)]
    assert moves[1.0][1].abs().min() > 0
    # the NMU's step is a tenth (to float32 rounding of W ~ 0.5); the NAU's is unchanged
    torch.testing.assert_close(moves[0.1][1], 0.1 * moves[1.0][1], rtol=1e-3, atol=1e-7)
    torch.testing.assert_close(moves[0.1][0], moves[1.0][0])


def test_the_benchmark_command_writes_the_table(tmp_path, one_thread):
    from nalu_suite.benchmarks.command import main

    out = tmp_path / "ten"
    main(
        [
            "ten_param",
            "--units",
            "nmu,nac_mul",
            "--seeds",
            "3",
            "--out",
            str(out),
            "trainer.max_steps=200",
            "trainer.val_check_interval=100",
            "task.eval_size=500",
            "replica_data=none",
            "callbacks.progress_bar=null",
        ]
    )
    table = (out / "table.md").read_text()
    assert "| `nmu` |" in table and "| 94% (+3/-6) |" in table and "| `nac_mul` |" in table
    assert (out / "cells.csv").read_text().count("\n") == 3
