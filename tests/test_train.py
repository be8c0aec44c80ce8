"""End-to-end: `train(cfg)` learns, writes results.json and checkpoints, and reports the success criterion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nalu_suite.train import train


@pytest.fixture(scope="module")
def static_add_run(tmp_path_factory, cfg_in):
    """One short static-task run shared by the tests below (training costs seconds, not minutes)."""
    out = tmp_path_factory.mktemp("run")
    cfg = cfg_in(
        out,
        "task=static_arith",
        "task.op=add",
        "unit=nau",
        "task.eval_size=1000",
        "trainer.max_steps=600",
        "trainer.val_check_interval=200",
        "logger=csv",
        "callbacks.progress_bar=null",
    )
    return out, train(cfg)


def test_training_learns_far_beyond_the_random_baseline(static_add_run):
    _, results = static_add_run
    # normalised error: 100 = the untrained model; a few hundred NAU steps get within a few percent
    assert results["test/interp/normalized"] < 5
    assert results["test/extrap/normalized"] < 5
    assert results["train_steps"] == 600


def test_results_json_holds_the_returned_metrics_under_logger_names(static_add_run):
    out, results = static_add_run
    saved = json.loads((Path(out) / "results.json").read_text())
    assert saved.keys() == results.keys()
    for name in (
        "test/interp/mse",
        "test/extrap/mse",
        "test/extrap/success",
        "solved_at",
        "sparsity_error",
        "val/mse",
    ):
        assert name in saved
    assert saved["test/extrap/success"] == float(saved["test/extrap/mse"] < saved["success_threshold"])
    metrics_csv = (Path(out) / "csv" / "metrics.csv").read_text().splitlines()[0]
    assert "val/mse" in metrics_csv and "test/extrap/mse" in metrics_csv


def test_best_and_last_checkpoints_are_kept_and_reload(static_add_run):
    import torch

    from nalu_suite.system import ArithmeticSystem

    out, results = static_add_run
    ckpts = Path(out) / "checkpoints"
    assert (ckpts / "last.ckpt").exists() and (ckpts / "best.ckpt").exists()
    raw = torch.load(ckpts / "best.ckpt", weights_only=True)  # plain values only: no pickled code
    assert raw["hyper_parameters"]["task"]["op"] == "add"
    system = ArithmeticSystem.load_from_checkpoint(ckpts / "best.ckpt", weights_only=True)
    x, y = system.task.fixed_set("test/extrap")
    with torch.no_grad():
        mse = (system.model(x) - y).pow(2).mean().item()
    assert mse == pytest.approx(results["test/extrap/mse"], rel=1e-3)


def test_the_exactly_solved_model_counts_as_success_with_solved_at(make_cfg):
    """A run that starts at the exact NAU solution must report success and a solved_at step."""
    cfg = make_cfg(
        "task=static_arith",
        "task.op=sub",
        "unit=nau",
        "task.eval_size=500",
        "trainer.max_steps=20",
        "trainer.val_check_interval=10",
        "optim.lr=1e-9",
    )
    import torch

    import nalu_suite.tasks.static_arith as static

    original = static.StaticArithTask.build_model

    def solved_model(self):
        model = original(self)
        a, b = self.subsets.masks(self.input_size)
        with torch.no_grad():
            model.first.W.copy_(torch.stack([a, b]))
            model.second.W.copy_(torch.tensor([[1.0, -1.0]]))
        return model

    static.StaticArithTask.build_model = solved_model
    try:
        results = train(cfg)
    finally:
        static.StaticArithTask.build_model = original
    assert results["test/extrap/success"] == 1.0
    assert results["solved_at"] == 10
    assert results["sparsity_error"] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("flush", [True, False])
def test_configure_torch_flushes_denormals_only_when_asked(flush):
    import torch
    from omegaconf import OmegaConf

    from nalu_suite.runtime import configure_torch

    try:
        configure_torch(OmegaConf.create({"flush_denormal": flush, "threads": None}))
        tiny = torch.tensor([1e-40], dtype=torch.float32)  # a float32 denormal
        assert (tiny.item() == 0.0) is (flush and torch.set_flush_denormal(True))
    finally:
        torch.set_flush_denormal(False)


def test_a_unit_auto_checkpoint_stores_the_unit_pair_and_budget_it_trained(cfg_in, tmp_path):
    """unit=auto is resolved in the config: the checkpoint names NAU -> NMU for mul, never "auto", so an
    installed package rebuilds the model from the checkpoint alone."""
    import torch

    from nalu_suite.evaluate import model_from_checkpoint

    cfg = cfg_in(tmp_path, "task=static_arith", "task.op=mul", "debug=fast", "task.eval_size=100")
    train(cfg)
    raw = torch.load(tmp_path / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    hp = raw["hyper_parameters"]
    assert (hp["unit"]["first"], hp["unit"]["second"]) == ("nau", "nmu")
    assert hp["max_steps"] == 20 and hp["regularizer"]["start"] == 20000  # debug=fast's steps, mul's recipe
    _, model = model_from_checkpoint(raw)
    assert [type(m).__name__ for m in (model.first, model.second)] == ["NAU", "NMU"]
