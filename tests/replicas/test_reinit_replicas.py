"""``reinit.every > 0`` with ``replicas=R``: each replica is re-initialised exactly as its plain run is."""

from __future__ import annotations

import pytest
from omegaconf import open_dict

from nalu_suite.train import train

from .test_replicas import assert_same_metrics

# a rule loose enough to fire within 60 steps: check every 5 steps once more than 10 losses are stored
REINIT = [
    "task=smat",
    "unit=inalu",
    "task.op=mul",
    "task.range=7",
    "task.eval_size=100",
    "task.threshold_samples=1000",
    "batch_size=16",
    "trainer.max_steps=60",
    "trainer.val_check_interval=20",
    "reinit.min_losses=10",
    "reinit.threshold=0",
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from nalu_suite.config import compose

    def run(seed: int, replicas: int, every: int = 5):
        overrides = ["callbacks.progress_bar=null", "logger=none", *REINIT, f"reinit.every={every}"]
        cfg = compose([*overrides, f"seed={seed}", f"replicas={replicas}"])
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path_factory.mktemp(f"s{seed}r{replicas}e{every}"))
        return train(cfg)

    return {"plain": [run(0, 1), run(1, 1)], "pair": run(0, 2)["replicas"], "off": run(0, 1, every=0)}


def test_replica_k_is_reinitialised_as_the_plain_run_with_seed_s_plus_k(runs):
    for plain, replica in zip(runs["plain"], runs["pair"], strict=True):
        assert plain["train/reinits"] >= 1  # the rule fired
        assert replica["train/reinits"] == plain["train/reinits"]
        assert_same_metrics(replica, plain, rel=1e-5)


def test_the_reinitialisation_changed_the_run(runs):
    off = runs["off"]
    assert "train/reinits" not in off
    assert off["test/extrap/mse"] != pytest.approx(runs["plain"][0]["test/extrap/mse"], rel=1e-3)


@pytest.fixture(scope="module")
def primer_runs(tmp_path_factory):
    """The Primer's iNALU settings: the rule on the latest validation MSE, the regulariser gated by it
    (from step 10 here, open from the first validation at step 20 on: ``gate`` is huge)."""
    from nalu_suite.config import compose

    primer = ["reinit.signal=validation", "regularizer.start=10", "regularizer.end=10"]

    def run(seed: int, replicas: int, *extra: str):
        overrides = ["callbacks.progress_bar=null", "logger=none", *REINIT, "reinit.every=5", *primer]
        cfg = compose([*overrides, *extra, f"seed={seed}", f"replicas={replicas}"])
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path_factory.mktemp(f"primer{seed}r{replicas}"))
        return train(cfg)

    gate = "regularizer.gate=1e30"
    return {
        "plain": [run(0, 1, gate), run(1, 1, gate)],
        "pair": run(0, 2, gate)["replicas"],
        "gated_alone": run(0, 1, gate, "reinit.every=0"),  # without re-initialisation
        "ungated_alone": run(0, 1, "reinit.every=0"),
        "shut": run(0, 1, "regularizer.gate=1e-30"),
        "no_reg": run(0, 1, "regularizer.weight=0"),
    }


def test_the_validation_signal_and_the_gate_act_on_replicas_as_on_plain_runs(primer_runs):
    for plain, replica in zip(primer_runs["plain"], primer_runs["pair"], strict=True):
        assert plain["train/reinits"] >= 1  # the untrained error stored from step 0 on: fires at step 10
        assert replica["train/reinits"] == plain["train/reinits"]
        assert_same_metrics(replica, plain, rel=1e-5)


def test_the_gate_is_closed_before_the_first_validation_and_while_the_error_is_above_it(primer_runs):
    gated, ungated = primer_runs["gated_alone"], primer_runs["ungated_alone"]
    # steps 10-19 trained without the regulariser only in the gated run (the runs are otherwise the same
    # computation, so any difference is the gate's)
    assert gated["train/loss"] != ungated["train/loss"]
    assert gated["test/interp/mse"] != ungated["test/interp/mse"]
    # a gate no error is below: the regulariser never counts, the run is the one without it
    shut, no_reg = primer_runs["shut"], primer_runs["no_reg"]
    for key in ("test/interp/mse", "test/extrap/mse", "sparsity_error", "train/reinits"):
        assert shut[key] == no_reg[key], key


@pytest.mark.parametrize("replicas", [1, 2])
def test_the_validation_signal_stores_the_untrained_error_before_the_first_validation(tmp_path, replicas):
    """As the Primer's script, which evaluates at step 0: with ``min_losses=10`` the rule fires at step 10,
    before the first validation (step 20), on the untrained model's error (the only value stored)."""
    from nalu_suite.config import compose

    overrides = ["callbacks.progress_bar=null", "logger=none", *REINIT, "reinit.every=5"]
    cfg = compose([*overrides, "reinit.signal=validation", "trainer.max_steps=20", f"replicas={replicas}"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    result = train(cfg)
    rows = result["replicas"] if replicas > 1 else [result]
    assert [row["train/reinits"] for row in rows] == [1] * replicas  # once: the list starts again after it
