"""`logger=wandb`: an offline run gets the config, every metric and the figures; checkpoints go up online.

No network: the run is offline (``WANDB_MODE=offline``) and W&B's files go under ``tmp_path``.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import open_dict

wandb = pytest.importorskip("wandb")


@pytest.fixture
def offline_wandb(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    yield
    if wandb.run is not None:  # a failed test must not leave its run open for the next one
        wandb.finish()


def as_plain(value):
    """W&B summaries (and their sub-dicts, which have ``keys()`` but no ``__iter__``) as plain dicts."""
    if hasattr(value, "keys") and not isinstance(value, dict):
        return {k: as_plain(value.get(k)) for k in value.keys()}  # noqa: SIM118
    return value


def test_offline_run_records_config_metrics_and_figures_and_says_how_to_sync(
    offline_wandb, monkeypatch, tmp_path, capfd
):
    from nalu_suite.cli.train import run
    from nalu_suite.config import compose

    cfg = compose(
        [
            "task=identity_failure",  # a task that makes a figure
            "task.activations=[relu]",
            "task.models_per_activation=2",
            "task.eval_size=200",
            "trainer.max_steps=20",
            "trainer.val_check_interval=10",
            "callbacks.progress_bar=null",
            "logger=wandb",
            "logger.wandb.project=nalu-test",
        ]
    )
    out = tmp_path / "run"
    with open_dict(cfg):
        cfg.paths.output_dir = str(out)

    seen: dict = {}
    real_finish = wandb.finish

    def finish_and_record(*args, **kwargs):  # what the run holds when train.run() closes it
        live = wandb.run
        summary = as_plain(live.summary)
        seen.update(summary=summary, config=dict(live.config), dir=Path(live.dir), project=live.project)
        return real_finish(*args, **kwargs)

    uploads: list = []
    monkeypatch.setattr(wandb, "finish", finish_and_record)
    monkeypatch.setattr(wandb.Run, "log_artifact", lambda self, *a, **k: uploads.append(a))

    objective = run(cfg)  # the Hydra entry: trains, then finishes the W&B run

    assert wandb.run is None
    results = json.loads((out / "results.json").read_text())
    summary = seen["summary"]
    assert summary["val/mae"] == pytest.approx(objective) == pytest.approx(results["val/mae"])
    logged = [n for n in results if n.startswith(("val/", "test/")) and not n.endswith("_best")]
    assert logged
    for name in logged:
        assert summary[name] == pytest.approx(results[name]), name
    assert summary["trainer/global_step"] == 20

    config = seen["config"]  # the whole resolved config, not just the module's hyper-parameters
    assert config["trainer"]["max_steps"] == 20
    assert config["batch_size"] == cfg.batch_size
    assert config["task"]["activations"] == ["relu"]
    assert config["logger"]["wandb"]["project"] == seen["project"] == "nalu-test"

    figures = summary["figures"]
    assert figures["_type"] == "images/separated" and figures["count"] == 1
    (png,) = (seen["dir"] / "media" / "images").glob("figures_*.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    run_dir = seen["dir"].parent
    assert run_dir.parent == out / "wandb" and run_dir.name.startswith("offline-run-")
    assert uploads == []  # offline: checkpoints stay on disk
    printed = "".join(capfd.readouterr())
    assert f"wandb sync {run_dir}" in printed


class FakeRun:
    def __init__(self, offline: bool, disabled: bool = False):
        self.id, self.offline, self.disabled = "abc123", offline, disabled
        self.artifacts: list = []

    def log_artifact(self, artifact, aliases=None):
        self.artifacts.append((artifact, aliases))


@pytest.mark.parametrize(
    ("offline", "disabled", "uploaded"), [(False, False, True), (True, False, False), (False, True, False)]
)
def test_final_checkpoints_become_one_model_artifact_only_when_online(tmp_path, offline, disabled, uploaded):
    import torch
    from lightning.pytorch.loggers import WandbLogger

    from nalu_suite.callbacks import WandbExtras

    best, last = tmp_path / "best.ckpt", tmp_path / "last.ckpt"
    best.write_bytes(b"best")
    last.write_bytes(b"last")
    checkpoint = SimpleNamespace(
        best_model_path=str(best),
        last_model_path=str(last),
        best_model_score=torch.tensor(0.25),
        monitor="val/mse",
    )
    fake = FakeRun(offline, disabled)
    trainer = SimpleNamespace(
        is_global_zero=True,
        global_step=20,
        loggers=[WandbLogger(experiment=fake)],
        checkpoint_callbacks=[checkpoint],
    )
    WandbExtras({}).on_fit_end(trainer, None)
    if not uploaded:
        assert fake.artifacts == []
        return
    ((artifact, aliases),) = fake.artifacts
    assert (artifact.name, artifact.type) == ("model-abc123", "model")
    assert sorted(artifact.manifest.entries) == ["best.ckpt", "last.ckpt"]
    assert artifact.metadata == {"global_step": 20, "monitor": "val/mse", "best_score": 0.25}
    assert "final" in aliases
