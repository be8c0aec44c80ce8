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
    ],
)
def test_other_ops_and_sizes_are_rejected_with_the_choice(change, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TenParamTask(ten_cfg(**change), UNIT, 0)


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
