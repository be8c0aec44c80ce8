"""Drive replica runs: ``fit_lockstep`` (R seeds of one or more configurations on one batch stream) and
``train_replicas`` (what ``nalu-train ... replicas=R`` runs: fit, test, results, checkpoint, loggers)."""

from __future__ import annotations

import csv
import gc
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from nalu_suite import fast_uniform
from nalu_suite.replicas.engine import ReplicaRun
from nalu_suite.replicas.logging import ReplicaLoggers
from nalu_suite.replicas.settings import replica_settings
from nalu_suite.results import print_summary, success_name, summarize, write_results
from nalu_suite.runtime import build_loggers, configure_torch, to_plain, validate

log = logging.getLogger("nalu_suite")


def fit_lockstep(
    runs: list[ReplicaRun],
    batches: Iterator,
    *,
    on_validate: Callable[[int], None] | None = None,
    desc: str = "",
    position: int = 0,
) -> None:
    """Train ``runs`` step by step on the same ``batches`` (each run's replicas on their own slices)
    until the first run's ``max_steps`` or until no replica of any run is alive; validate every
    ``val_check_interval`` steps, then call ``on_validate(step)``. Keeps each run's last training loss.

    The objects alive when training starts and after the first validation (torch, the compiled graphs,
    the runs) are frozen out of Python's cyclic garbage collector (``gc.freeze``) until the end: a full
    collection scanned them all, about 0.3-0.5 s each, once every thousand or so steps of the static
    table's ten units. Frozen objects are still freed by reference counting; cycles among them wait for
    the end of training (``gc.unfreeze``, unless the caller froze objects itself)."""
    settings = runs[0].settings
    bar = None
    if settings.progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=settings.max_steps, desc=desc, unit="step", mininterval=1.0, position=position)
    frozen_before = gc.get_freeze_count()
    gc.freeze()  # the docstring's last paragraph
    try:
        while runs[0].step < settings.max_steps and any(bool(run.alive.any()) for run in runs):
            batch = next(batches)
            for run in runs:
                run.train_step(batch)
            step = runs[0].step
            if step % settings.val_check_interval == 0:
                for run in runs:
                    run.validate()
                if on_validate is not None:
                    on_validate(step)
                if bar is not None:
                    bar.set_postfix_str("solved " + " ".join(str(run.tracker.solved) for run in runs))
                if step == settings.val_check_interval:
                    gc.freeze()  # the graphs compiled by the first steps and validation, too
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if frozen_before == 0:
            gc.unfreeze()
    for run in runs:
        run.record_train_loss()


def replica_results(run: ReplicaRun, wall: float) -> dict[str, Any]:
    """Test the best checkpoints and summarise: ``results.json``'s content (``results.summarize`` + rows)."""
    rows = run.rows(run.test(), wall)
    success = success_name(run.task.success_metric)
    return summarize(rows, success) | {
        "seed": run.settings.seed,
        "train_steps": float(run.step),
        "wall_time_s": round(wall, 2),
        "seed_steps_per_s": round(run.settings.replicas * run.step / max(wall, 1e-9), 1),
        "compiled": run.settings.compile,
        "compile_s": round(run.compile_s, 2),  # the calls that compiled: steps, evaluations (in wall_time_s)
        "replicas": rows,
    }


def save_run(run: ReplicaRun, results: dict[str, Any], run_dir: Path) -> None:
    """``results.json``, ``replicas.csv`` (one row per seed), ``replicas_validation.csv`` (every
    validation of every seed) and ``checkpoints/replicas.pt`` (stacked best weights and the resolved
    config, plain values that ``torch.load(weights_only=True)`` reads)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_results(results, run_dir)
    rows = results["replicas"]
    _write_csv(run_dir / "replicas.csv", rows, first=["seed"])
    _write_csv(run_dir / "replicas_validation.csv", run.tracker.history, first=["step", "seed"])
    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    best = run.tracker.best_params or run.model.snapshot()
    torch.save(
        {
            "seeds": run.settings.seeds,
            "best": {k: v.cpu() for k, v in best.items()},
            "best_step": run.tracker.best_step,
            "config": run.config,
        },
        ckpt_dir / "replicas.pt",
    )


def _write_csv(path: Path, rows: list[dict[str, Any]], first: list[str]) -> None:
    if not rows:
        return
    names = first + sorted({k for row in rows for k in row} - set(first))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=names)
        writer.writeheader()
        writer.writerows(rows)


def train_replicas(cfg: DictConfig) -> dict[str, Any]:
    """Train ``cfg.replicas`` seeds of ``cfg`` as one batched run; write its files; return the results."""
    started = time.time()
    validate(cfg)
    settings = replica_settings(cfg)
    configure_torch(cfg)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    loggers = ReplicaLoggers(build_loggers(cfg))
    loggers.log_hyperparams(to_plain(cfg))

    run = ReplicaRun(cfg, settings)
    # the uniform kernel is loaded already (the evaluation sets were drawn with it), so the forked
    # data worker inherits it
    log.info(
        "replica data drawn by: %s; uniform draws: %s; compiled step: %s",
        run.batches.prefetch,
        fast_uniform.backend(),
        settings.compile,
    )
    batches = iter(run.batches)  # starts the data worker (a forked process) before the bar's thread
    try:
        fit_lockstep(
            [run],
            batches,
            on_validate=lambda step: _log_progress(run, loggers, step),
            desc=f"{settings.replicas} replicas",
        )
    finally:
        batches.close()
    results = replica_results(run, time.time() - started)
    save_run(run, results, run_dir)
    loggers.log_results(results, results["replicas"], run.step)
    loggers.finalize()
    last = settings.seed + settings.replicas - 1
    title = f"{cfg.task.name} · unit={cfg.unit.name} · seeds {settings.seed}..{last}"
    print_summary(results, title, success_name(run.task.success_metric))
    return results


def _log_progress(run: ReplicaRun, loggers: ReplicaLoggers, step: int) -> None:
    tracker, monitor = run.tracker, run.task.monitor
    log.info(
        "step %d: solved %d/%d, median %s %.4g, diverged %d",
        step,
        tracker.solved,
        run.settings.replicas,
        monitor,
        tracker.median(monitor),
        tracker.diverged,
    )
    loggers.log_validation(step, run)
