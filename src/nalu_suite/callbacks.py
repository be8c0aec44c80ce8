"""What a W&B run gets beyond Lightning's own logging (``logger=wandb``).

Lightning's ``WandbLogger`` already records every ``self.log`` metric (so the run summary holds the
last value of each) and ``train()`` sends the task's figures through ``log_image``. This callback adds:

* the whole resolved Hydra config as the run config (Lightning logs only the module's
  hyper-parameters: task, unit, optim, regularizer, seed; not trainer, batch size or paths);
* when the run is online, the final checkpoints (``best.ckpt``, ``last.ckpt``) as one ``model``
  artifact after a successful fit. Offline and disabled runs upload nothing: ``wandb sync`` later
  uploads the metrics, and the checkpoints stay in the run directory.

It does nothing when no ``WandbLogger`` is attached, so ``train()`` can always add it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf


def wandb_loggers(trainer) -> list:
    from lightning.pytorch.loggers import WandbLogger

    return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]


def is_online(run) -> bool:
    """True when ``run`` talks to the W&B server (not ``WANDB_MODE=offline`` or ``disabled``)."""
    return not (getattr(run, "offline", True) or getattr(run, "disabled", True))


class WandbExtras(Callback):
    """Log the full config to W&B and, when online, upload the final checkpoints as an artifact."""

    def __init__(self, config: DictConfig | dict[str, Any]) -> None:
        self.config = config

    def plain_config(self) -> dict[str, Any]:
        if isinstance(self.config, DictConfig):
            return OmegaConf.to_container(self.config, resolve=True)  # type: ignore[return-value]
        return dict(self.config)

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        loggers = wandb_loggers(trainer)
        if loggers:
            config = self.plain_config()
            for logger in loggers:
                logger.log_hyperparams(config)  # rank 0 only (Lightning's decorator)

    def on_fit_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        files = checkpoint_files(trainer)
        for logger in wandb_loggers(trainer):
            if files and is_online(logger.experiment):
                log_checkpoint_artifact(logger.experiment, files, trainer)


def checkpoint_files(trainer) -> dict[str, Path]:
    """``{"best.ckpt": path, "last.ckpt": path}`` for the checkpoints the run kept (those that exist)."""
    files: dict[str, Path] = {}
    for cb in trainer.checkpoint_callbacks:
        for kind, path in (("best", cb.best_model_path), ("last", getattr(cb, "last_model_path", ""))):
            if path and Path(path).is_file():
                files[f"{kind}.ckpt"] = Path(path)
    return files


def log_checkpoint_artifact(run, files: dict[str, Path], trainer) -> None:
    """One artifact ``model-<run id>`` (type ``model``) holding the run's best and last checkpoints."""
    import wandb

    best = next((cb.best_model_score for cb in trainer.checkpoint_callbacks), None)
    metadata = {
        "global_step": int(trainer.global_step),
        "monitor": next((cb.monitor for cb in trainer.checkpoint_callbacks), None),
        "best_score": float(best) if best is not None else None,
    }
    artifact = wandb.Artifact(name=f"model-{run.id}", type="model", metadata=metadata)
    for name, path in files.items():
        artifact.add_file(str(path), name=name)
    run.log_artifact(artifact, aliases=["latest", "final"])
