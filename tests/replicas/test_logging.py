"""A ``replicas=R`` run logs through the configured Lightning loggers: W&B (offline), TensorBoard, CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from omegaconf import open_dict

from nalu_suite.train import train

SHORT = [
    "task=static_arith",
    "task.op=add",
    "task.eval_size=50",
    "task.baseline_draws=1",
    "replicas=3",
    "trainer.max_steps=40",
    "trainer.val_check_interval=20",
    "replica_data=none",
]


def replica_cfg(cfg_in, out: Path, *overrides: str):
    cfg = cfg_in(out, "callbacks.progress_bar=null", *SHORT, *overrides)
    with open_dict(cfg):
        for logger in (cfg.get("logger") or {}).values():
            if logger and "save_dir" in logger:
                logger.save_dir = str(out)
    return cfg


def test_wandb_run_gets_the_success_rate_and_the_per_seed_table(cfg_in, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    tables = []
    real_log = wandb.sdk.wandb_run.Run.log

    def spy_log(self, data, *args, **kwargs):
        tables.extend(v for v in data.values() if isinstance(v, wandb.Table))
        return real_log(self, data, *args, **kwargs)

    monkeypatch.setattr(wandb.sdk.wandb_run.Run, "log", spy_log)
    cfg = replica_cfg(cfg_in, tmp_path / "run", "logger=wandb", "logger.wandb.project=nalu-test")
    try:
        results = train(cfg)
        run = wandb.run
        summary = {k: run.summary[k] for k in run.summary.keys()}  # noqa: SIM118 - a W&B summary
        config = dict(run.config)
        run_dir = Path(run.dir).parent
    finally:
        wandb.finish()
    assert summary["test/extrap/success_rate"] == pytest.approx(results["test/extrap/success_rate"])
    assert summary["test/extrap/mse"] == pytest.approx(results["test/extrap/mse"])
    assert config["replicas"] == 3 and config["task"]["op"] == "add"
    assert run_dir.parent.parent == tmp_path / "run"  # the offline run lives in the run directory
    (table,) = tables
    assert len(table.data) == 3 and "seed" in table.columns
    seeds = [row[table.columns.index("seed")] for row in table.data]
    assert seeds == [0, 1, 2]


def test_tensorboard_gets_an_events_file_with_the_validation_medians(cfg_in, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(replica_cfg(cfg_in, tmp_path / "run", "logger=tensorboard"))
    (events,) = (tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*")
    accumulator = EventAccumulator(str(events.parent))
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    assert {"solved", "val/mse_median", "test/extrap/success_rate"} <= set(tags)
    assert [e.step for e in accumulator.Scalars("val/mse_median")] == [20, 40]


def test_csv_logger_and_the_per_seed_csv(cfg_in, tmp_path):
    results = train(replica_cfg(cfg_in, tmp_path / "run", "logger=csv"))
    with open(tmp_path / "run" / "replicas.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["seed"]) for r in rows] == [0, 1, 2]
    assert [float(r["test/extrap/mse"]) for r in rows] == pytest.approx(
        [r["test/extrap/mse"] for r in results["replicas"]]
    )
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        logged = list(csv.DictReader(f))
    final = [row for row in logged if row.get("test/extrap/success_rate")]
    assert float(final[-1]["test/extrap/success_rate"]) == results["test/extrap/success_rate"]
