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
