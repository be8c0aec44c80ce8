"""Train one configuration: ``train(cfg) -> dict`` of final metrics (the library entry point).

``cfg`` is a composed config (``nalu_suite.config.compose([...])`` or Hydra's): ``replicas=R > 1``
trains R seeds as one batched run (``nalu_suite.replicas``); otherwise the Lightning engine below
trains one. Either way the run directory (``paths.output_dir``) receives ``results.json`` (the
metrics, under the names the logger uses; ``nalu_suite.results``), checkpoints, the logger's files
and the task's figures. The command line is ``nalu-train`` (``nalu_suite.cli.train``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nalu_suite.results import print_results, result_row, write_results
from nalu_suite.runtime import (
    build_loggers,
    configure_torch,
    resolve_checkpoint,
    to_plain,
    uses_replicas,
    validate,
)

log = logging.getLogger("nalu_suite")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train and test ``cfg``; write ``results.json`` in the run directory; return the results."""
    if uses_replicas(cfg):
        from nalu_suite.replicas import train_replicas

        return train_replicas(cfg)
    return train_lightning(cfg)


def build_system_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """The plain values ``ArithmeticSystem`` is built from (and that its checkpoints store); ``reinit``
    only where it is on (``reinit.every > 0``)."""
    kwargs = {
        "task": to_plain(cfg.task),
        "unit": to_plain(cfg.unit),
        "optim": to_plain(cfg.optim),
        "regularizer": to_plain(cfg.get("regularizer")),
        "seed": int(cfg.seed),
        "max_steps": int(cfg.trainer.max_steps) if cfg.trainer.get("max_steps") is not None else None,
    }
    reinit = to_plain(cfg.get("reinit"))
    if reinit.get("every"):
        kwargs["reinit"] = reinit
    return kwargs


#: a callback config's ``monitor: task`` means the task's own validation metric (``Task.monitor``)
TASK_MONITOR = "task"


def build_callbacks(cfg: DictConfig, task) -> list:
    """The callbacks of ``cfg.callbacks`` (``_target_`` entries, ``conf/callbacks/*.yaml``), plus
    ``WandbExtras`` (full config and final checkpoints to W&B; a no-op without ``logger=wandb``)."""
    from hydra.utils import instantiate

    from nalu_suite.callbacks import WandbExtras

    callbacks = []
    for conf in (cfg.get("callbacks") or {}).values():
        if not conf or "_target_" not in conf:
            continue
        overrides = {"monitor": task.monitor} if conf.get("monitor") == TASK_MONITOR else {}
        callbacks.append(instantiate(conf, **overrides))
    callbacks.append(WandbExtras(cfg))
    return callbacks


def train_lightning(cfg: DictConfig) -> dict[str, Any]:
    """One seed with Lightning's ``Trainer``: fit, then test the best checkpoint by ``task.monitor``.

    ``ckpt_path`` resumes: the checkpoint must have the same task/unit/optim/regularizer/seed values
    (else ``ConfigError``); the CSV history before its step is kept. Ctrl-C raises ``KeyboardInterrupt``
    (Lightning's own handler exits instead), with ``last.ckpt`` from the latest validation."""
    started = time.time()
    task = validate(cfg)

    import lightning as L
    from lightning.pytorch.callbacks import ProgressBar

    from nalu_suite.checkpointing import check_resume, resume_from
    from nalu_suite.system import system_class_for

    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = resolve_checkpoint(cfg.get("ckpt_path"), run_dir)
    system_kwargs = build_system_kwargs(cfg)
    resumed_step = check_resume(ckpt_path, system_kwargs) if ckpt_path else None
    configure_torch(cfg)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)

    system = system_class_for(task)(**system_kwargs)
    datamodule = system.task.build_datamodule(cfg.paths.data_dir, int(cfg.batch_size))
    callbacks = build_callbacks(cfg, system.task)
    loggers = build_loggers(cfg)
    if resumed_step is not None:
        resume_from(loggers, resumed_step)  # csv/metrics.csv keeps the rows before the checkpoint
    trainer = L.Trainer(
        **to_plain(cfg.trainer),
        callbacks=callbacks,
        logger=loggers or False,
        enable_progress_bar=any(isinstance(cb, ProgressBar) for cb in callbacks),
        enable_checkpointing=True,
        default_root_dir=str(run_dir),
    )
    try:
        trainer.fit(system, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        fit_metrics = dict(trainer.callback_metrics)
        has_best = any(getattr(cb, "best_model_path", "") for cb in trainer.checkpoint_callbacks)
        trainer.test(
            system,
            datamodule=datamodule,
            ckpt_path="best" if has_best else None,
            verbose=False,
            weights_only=True,
        )
    except SystemExit:
        if trainer.interrupted:  # Lightning turns Ctrl-C into exit(1) after its on_exception hooks
            raise KeyboardInterrupt from None
        raise

    best = next(
        (cb.best_model_score for cb in trainer.checkpoint_callbacks if cb.best_model_score is not None), None
    )
    metrics = {name: float(v) for name, v in (fit_metrics | dict(trainer.callback_metrics)).items()}
    results = result_row(
        metrics,
        system.task,
        best_score=best,
        solved_at=system.solved_at,
        sparsity_error=float(system.model.sparsity_error()),
        train_steps=trainer.global_step,
        wall_time_s=time.time() - started,
    )
    figures = system.task.make_figures(system.model, run_dir)
    for logger in trainer.loggers:
        if hasattr(logger, "log_image") and figures:
            logger.log_image(key="figures", images=[str(p) for p in figures])
        if type(logger).__name__ == "WandbLogger" and trainer.is_global_zero:
            logger.experiment.summary.update(results)  # derived values too: success, solved_at, *_best
    if trainer.is_global_zero:
        write_results(results, run_dir)
        print_results(results, f"{cfg.task.name} · unit={cfg.unit.name} · seed={cfg.seed}")
    return results
