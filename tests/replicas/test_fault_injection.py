"""A diverged seed never costs the other seeds: two of eight replicas are poisoned mid-run, every row is
still written, the two count as failures and the six others are exactly a run without the fault."""

from __future__ import annotations

import json
import math

import pytest
import torch
from omegaconf import open_dict

from nalu_suite.replicas.engine import ReplicaRun
from nalu_suite.train import train

POISONED, AT_STEP = (2, 5), 30
RUN = [
    "task=static_arith",
    "task.op=add",
    "unit=nau",
    "task.eval_size=100",
    "task.baseline_draws=1",
    "batch_size=16",
    "trainer.max_steps=60",
    "trainer.val_check_interval=20",
    "replicas=8",
    "replica_data=none",
]


def run(make_cfg, tmp_path, name: str) -> dict:
    cfg = make_cfg(*RUN)
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / name)
    return train(cfg)


@pytest.fixture
def poisoned_run(make_cfg, tmp_path, monkeypatch):
    clean = run(make_cfg, tmp_path, "clean")
    real_step = ReplicaRun.train_step

    def step_with_fault(self, batch):
        if self.step == AT_STEP:
            with torch.no_grad():
                for k in POISONED:
                    self.model.params["model.first.W"][k, 0, 0] = float("nan")
        real_step(self, batch)

    monkeypatch.setattr(ReplicaRun, "train_step", step_with_fault)
    return clean, run(make_cfg, tmp_path, "poisoned"), tmp_path / "poisoned"


def test_every_seed_is_written_and_the_diverged_ones_fail(poisoned_run):
    clean, poisoned, out = poisoned_run
    on_disk = json.loads((out / "results.json").read_text())
    rows = on_disk["replicas"]
    assert [row["seed"] for row in rows] == list(range(8))
    assert on_disk["diverged"] == 2
    for k in POISONED:
        assert rows[k]["diverged_at"] == AT_STEP and rows[k]["test/extrap/success"] == 0.0
    assert (out / "replicas.csv").read_text().count("\n") == 9  # header and eight seeds
    assert (out / "checkpoints" / "replicas.pt").is_file()
    expected = sum(r["test/extrap/success"] for k, r in enumerate(clean["replicas"]) if k not in POISONED)
    assert on_disk["test/extrap/success_rate"] == expected / 8


def test_the_other_seeds_are_exactly_the_run_without_the_fault(poisoned_run):
    clean, poisoned, _ = poisoned_run
    for k in set(range(8)) - set(POISONED):
        a, b = poisoned["replicas"][k], clean["replicas"][k]
        for name in set(b) - {"wall_time_s"}:
            if isinstance(b[name], float) and math.isnan(b[name]):
                assert math.isnan(a[name]), (k, name)
            else:
                assert a[name] == b[name], (k, name)


def test_summaries_survive_an_infinite_error():
    """A seed that blew up to inf (rather than NaN) once made ``statistics.stdev`` raise before
    results.json was written; now its mean is inf and the other summaries stand."""
    from nalu_suite.results import summarize
    from nalu_suite.stats import mean_std

    assert mean_std([1.0, math.inf]) == (math.inf, pytest.approx(math.nan, nan_ok=True))
    rows = [
        {"seed": 0, "test/extrap/mse": math.inf, "test/extrap/success": 0.0, "solved_at": math.nan},
        {"seed": 1, "test/extrap/mse": 1e-12, "test/extrap/success": 1.0, "solved_at": 7.0},
    ]
    summary = summarize(rows, "test/extrap/success")
    assert summary["test/extrap/success_rate"] == 0.5 and summary["solved_at_median"] == 7.0
    assert summary["test/extrap/mse"] == math.inf
