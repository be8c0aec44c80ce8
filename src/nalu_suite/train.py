"""Train one configuration: ``train(cfg) -> dict`` of final metrics, and the Hydra entry point.

Usage (from the repository root)::

    python train.py task=static_arith task.op=add unit=nau
    python train.py -m task=static_arith task.op=add,mul unit=nalu,nau seed=0,1,2

The run directory (Hydra's output dir) receives ``results.json`` (the metrics, under the same names
the logger uses), ``checkpoints/{best,last}.ckpt``, the logger's files and the task's figures.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nalu_suite.config import CONF_DIR
from nalu_suite.errors import ConfigError

log = logging.getLogger("nalu_suite")


def to_plain(cfg: DictConfig | dict | None) -> dict[str, Any]:
    if cfg is None:
        return {}
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def build_system_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """The plain values ``ArithmeticSystem`` is built from (and that its checkpoints store)."""
    return {
        "task": to_plain(cfg.task),
        "unit": to_plain(cfg.unit),
        "optim": to_plain(cfg.optim),
        "regularizer": to_plain(cfg.get("regularizer")),
        "seed": int(cfg.seed),
    }


def validate(cfg: DictConfig):
    """Check the whole config before anything expensive happens; return the task object."""
    from nalu_suite.optim import check_optim
    from nalu_suite.tasks import build_task

    for key in ("task", "unit", "optim", "trainer"):
        if cfg.get(key) is None:
            raise ConfigError(f"config has no '{key}' section; pick one with {key}=<name>")
    check_optim(to_plain(cfg.optim))
    if int(cfg.get("batch_size", 1)) < 1:
        raise ConfigError(f"batch_size={cfg.batch_size} must be >= 1")
    return build_task(to_plain(cfg.task), to_plain(cfg.unit), int(cfg.seed))


def _callbacks(cfg: DictConfig, task, run_dir: Path) -> list:
    from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar, TQDMProgressBar

    from nalu_suite.callbacks import WandbExtras

    callbacks: list = []
    cb = cfg.get("callbacks") or {}
    if cb.get("checkpoint", True):
        callbacks.append(
            ModelCheckpoint(
                dirpath=run_dir / "checkpoints",
                filename="best",
                monitor=task.monitor,
                mode="min",
                save_last=True,
                save_top_k=1,
            )
        )
    bar = cb.get("progress_bar", "tqdm")
    if bar == "rich":
        callbacks.append(RichProgressBar())
    elif bar == "tqdm":
        callbacks.append(TQDMProgressBar(refresh_rate=int(cb.get("refresh_rate", 50))))
    callbacks.append(WandbExtras(cfg))  # full config + final checkpoints to W&B; no-op without logger=wandb
    return callbacks


def _loggers(cfg: DictConfig) -> list:
    from hydra.utils import instantiate

    loggers = cfg.get("logger") or {}
    if "_target_" in loggers:
        loggers = {"main": loggers}
    return [instantiate(conf) for conf in loggers.values() if conf and "_target_" in conf]


def _resolve_ckpt(ckpt_path: str | None, run_dir: Path) -> str | None:
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path == "last":
        last = run_dir / "checkpoints" / "last.ckpt"
        if not last.exists():
            raise ConfigError(f"ckpt_path=last but {last} does not exist; nothing to resume")
        return str(last)
    if not Path(ckpt_path).exists():
        raise ConfigError(f"ckpt_path={ckpt_path!r}: no such file")
    return ckpt_path


def add_success(results: dict[str, float], task) -> None:
    """Madsen & Johansen's success criterion: ``<split>/success`` = 1 if the task's success metric
    (e.g. ``test/extrap/mse``) is below its threshold."""
    threshold = task.success_threshold()
    if threshold is not None and task.success_metric in results:
        value = results[task.success_metric]
        success_name = task.success_metric.rsplit("/", 1)[0] + "/success"
        results[success_name] = float(math.isfinite(value) and value < threshold)
        results["success_threshold"] = threshold


def write_results(results: dict[str, float], run_dir: Path, title: str) -> None:
    (run_dir / "results.json").write_text(json.dumps(results, indent=2, allow_nan=True) + "\n")
    print_results(results, title)
    log.info("results written to %s", run_dir / "results.json")


def collect_results(fit_metrics: dict, trainer, system, task, started: float) -> dict[str, float]:
    """Final metrics (the names the logger used) plus success, solved_at and wall time.

    ``fit_metrics`` are the values at the end of training (the last validation); test metrics come
    from the best checkpoint by ``task.monitor``, whose value is reported as ``<monitor>_best``.
    """
    results = {name: float(value) for name, value in fit_metrics.items()}
    results.update({name: float(value) for name, value in trainer.callback_metrics.items()})
    for cb in trainer.checkpoint_callbacks:
        if getattr(cb, "best_model_score", None) is not None:
            results[f"{task.monitor}_best"] = float(cb.best_model_score)
    add_success(results, task)
    results["solved_at"] = float(system.solved_at) if system.solved_at is not None else float("nan")
    results["sparsity_error"] = float(system.model.sparsity_error())
    results["train_steps"] = float(trainer.global_step)
    results["wall_time_s"] = round(time.time() - started, 2)
    return dict(sorted(results.items()))


def print_results(results: dict[str, float], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in results.items():
        table.add_row(name, f"{value:.6g}")
    Console().print(table)


def configure_torch(cfg: DictConfig) -> None:
    """Apply the process-wide torch settings of ``cfg``: ``threads`` and ``flush_denormal``.

    Denormal floats (|x| < 1.2e-38) are 10-100x slower on x86 CPUs. They appear once some gradients or
    Adam's second moments become tiny, and then made MNIST training steps 5-8x slower (182 -> 1394 ms for
    the NAU core, the same loss either way; ``scripts/bench_mnist_step.py``, BENCHMARKS.md).
    """
    import torch

    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    torch.set_flush_denormal(bool(cfg.get("flush_denormal", True)))  # no-op on CPUs without SSE3


def train(cfg: DictConfig) -> dict[str, float]:
    """Train and test one configuration; write ``results.json`` in the run directory; return the metrics."""
    if str(cfg.get("replicas", 1)) != "1" or cfg.get("replicas_engine"):
        from nalu_suite.replicas import train_replicas  # many seeds as one batched run (replicas.py)

        return train_replicas(cfg)
    started = time.time()
    validate(cfg)

    import lightning as L

    from nalu_suite.system import ArithmeticSystem

    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = _resolve_ckpt(cfg.get("ckpt_path"), run_dir)
    configure_torch(cfg)
    L.seed_everything(int(cfg.seed), workers=True, verbose=False)

    system = ArithmeticSystem(**build_system_kwargs(cfg))
    datamodule = system.task.build_datamodule(cfg.paths.data_dir, int(cfg.batch_size))
    callbacks = _callbacks(cfg, system.task, run_dir)
    trainer = L.Trainer(
        **to_plain(cfg.trainer),
        callbacks=callbacks,
        logger=_loggers(cfg) or False,
        enable_progress_bar=(cfg.get("callbacks") or {}).get("progress_bar", "tqdm") != "none",
        default_root_dir=str(run_dir),
    )
    trainer.fit(system, datamodule=datamodule, ckpt_path=ckpt_path)
    fit_metrics = dict(trainer.callback_metrics)
    has_best = any(getattr(cb, "best_model_path", "") for cb in trainer.checkpoint_callbacks)
    trainer.test(system, datamodule=datamodule, ckpt_path="best" if has_best else None, verbose=False)

    results = collect_results(fit_metrics, trainer, system, system.task, started)
    figures = system.task.make_figures(system.model, run_dir)
    for logger in trainer.loggers:
        if hasattr(logger, "log_image") and figures:
            logger.log_image(key="figures", images=[str(p) for p in figures])
        if type(logger).__name__ == "WandbLogger" and trainer.is_global_zero:
            logger.experiment.summary.update(results)  # derived values too: success, solved_at, *_best
    if trainer.is_global_zero:
        unit = system.task.unit.get("name", cfg.unit.name)  # unit=auto: the one the task picked
        write_results(results, run_dir, f"{cfg.task.name} · unit={unit} · seed={cfg.seed}")
    return results


def objective(cfg: DictConfig, results: dict[str, float]) -> float | None:
    """The value a Hydra sweeper optimises (``optimized_metric``), or None."""
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in results:
        raise ConfigError(
            f"optimized_metric={name!r} is not a metric of this run; have: {', '.join(results)}"
        )
    return results[name]


def _in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def record_divergence(cfg: DictConfig, err: Exception) -> None:
    """A diverged sweep job still leaves a results.json (success 0, ``diverged`` 1), so the sweep goes on
    and ``scripts/report.py`` counts the job as a failure instead of silently dropping it."""
    from nalu_suite.tasks import build_task

    task = build_task(to_plain(cfg.task), to_plain(cfg.unit), int(cfg.seed))
    results = {"diverged": 1.0, "error": str(err)}
    if task.success_metric:
        results[task.success_metric.rsplit("/", 1)[0] + "/success"] = 0.0
    run_dir = Path(cfg.paths.output_dir)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")


def _apply_recipe(cfg: DictConfig) -> None:
    """``unit=auto`` on the static task: the op's own settings (``task.recipes``), where neither the
    command line nor a preset (``debug=fast``, ``local``) set them; the run's ``.hydra/config.yaml`` is
    rewritten to the config that is trained."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from nalu_suite.config import protected_keys
    from nalu_suite.tasks.static_arith import apply_recipe

    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    overrides, choices = (list(hydra.overrides.task), dict(hydra.runtime.choices)) if hydra else ([], {})
    applied = apply_recipe(cfg, protected_keys(overrides, choices))
    if applied:
        log.info("unit=auto, task.op=%s: the op's recipe sets %s", cfg.task.op, " ".join(applied))
        if hydra and hydra.output_subdir:
            OmegaConf.save(cfg, Path(hydra.runtime.output_dir) / hydra.output_subdir / "config.yaml")


def run(cfg: DictConfig) -> float | None:
    """Hydra entry: train and return the sweep objective. Config mistakes end with a one-line error
    (exit 2); a diverging run ends with one (exit 3), or inside a sweep records the failure and goes on."""
    from nalu_suite.divergence import DivergenceError

    try:
        _apply_recipe(cfg)
        results = train(cfg)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        sys.exit(2)
    except DivergenceError as err:
        print(f"training diverged: {err}", file=sys.stderr)
        if not _in_multirun():
            sys.exit(3)
        record_divergence(cfg, err)
        return float("nan")
    finally:
        if "wandb" in sys.modules:
            import wandb

            if wandb.run is not None:
                wandb.finish()
    return objective(cfg, results)


def main(conf_dir: str | Path = CONF_DIR) -> None:
    """Hydra entry point. ``nalu-train`` uses the repository's ``conf/`` (needs an editable install)."""
    import hydra

    hydra.main(config_path=str(Path(conf_dir).resolve()), config_name="train", version_base="1.3")(run)()


if __name__ == "__main__":
    main()
