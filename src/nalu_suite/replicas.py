"""Many seeds in one run: ``python train.py task=static_arith replicas=100``.

Madsen & Johansen (ICLR 2020) judge a unit by its success rate over 100 seeds. The models are tiny, so
one training step of one seed is dominated by fixed per-step overhead; ``replicas=R`` trains R
independent models in one process as one batched computation instead:

* **Replica k of a run with ``seed=s`` is the plain run with ``seed=s+k``**: its own initialisation
  (the global torch generator seeded with ``s+k`` before ``task.build_model()``, as
  ``L.seed_everything`` does), its own task (subsets drawn from ``s+k``), its own training stream
  (the plain run's ``BatchStream``) and fixed evaluation sets, its own optimiser state, regulariser,
  projection, gradient clipping, validation metrics, ``solved_at`` and best checkpoint.
* The parameters of the R models are stacked (``replica_model.StackedModel``); ``torch.func.vmap`` runs
  the model's own code over them. The loss that is back-propagated is the **sum** of the replicas'
  losses, so each replica's gradient is exactly its own, and the optimisers (Adam, AdamW, SGD, RMSprop:
  all elementwise) act on each replica as R separate optimisers would. Gradient clipping by norm is
  computed per replica.
* Semantics follow the Lightning run of ``train.py``: validation every ``trainer.val_check_interval``
  steps; ``solved_at`` = the first validation step whose ``task.solved_metric`` is below
  ``task.success_threshold()``; the test metrics come from the replica's best checkpoint by
  ``task.monitor`` (minimised; the first of equal values is kept; compared as logged, in float32); the
  reported ``solved_at`` is the one stored with that checkpoint (as the plain run restores it).
* A replica whose loss becomes NaN/inf (where a plain run stops with ``DivergenceError``) is frozen
  at its last finite weights, counted as a failure and marked with ``diverged_at``; the others go on.

``results.json`` holds one row per replica under ``"replicas"`` (the plain run's metric names plus
``seed``) and the summaries of ``replica_results.summarize``. ``scripts/report.py`` pools those rows
like seeds. Not supported with replicas: resuming (``ckpt_path``), Lightning loggers and callbacks,
gradient accumulation, mixed precision.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from nalu_suite import fast_uniform
from nalu_suite.errors import ConfigError, check_choice
from nalu_suite.replica_data import PREFETCH_MODES, StackedBatches, default_prefetch
from nalu_suite.replica_model import StackedModel
from nalu_suite.replica_results import as_logged, summarize

log = logging.getLogger("nalu_suite")

#: inputs (elements) evaluated per vmap call; bounds the memory of evaluating many replicas at once
EVAL_ELEMENTS_PER_CALL = 1 << 23


@dataclass(frozen=True)
class ReplicaSettings:
    """What the replica loop needs from the Hydra config, checked."""

    replicas: int
    seed: int
    batch_size: int
    max_steps: int
    val_check_interval: int
    clip_value: float | None
    clip_algorithm: str
    device: str
    progress_bar: bool
    prefetch: str  # replica_data, resolved: process | thread | none

    @property
    def seeds(self) -> list[int]:
        return [self.seed + k for k in range(self.replicas)]


def _positive_int(name: str, value: Any) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r} must be a positive integer") from None
    if number < 1 or number != int(number):
        raise ConfigError(f"{name}={value!r} must be a positive integer")
    return int(number)


def replica_settings(cfg: DictConfig) -> ReplicaSettings:
    """Check the parts of ``cfg`` the replica loop depends on; raise ``ConfigError`` naming what is wrong."""
    replicas = _positive_int("replicas", cfg.get("replicas", 1))
    if cfg.get("ckpt_path") not in (None, "", "null"):
        raise ConfigError("ckpt_path: resuming is not supported with replicas; run without ckpt_path")
    trainer = cfg.trainer
    max_steps = _positive_int("trainer.max_steps", trainer.get("max_steps"))
    val_every = _positive_int(
        "trainer.val_check_interval (replicas validate every N steps)", trainer.get("val_check_interval")
    )
    if int(trainer.get("accumulate_grad_batches") or 1) != 1:
        raise ConfigError("trainer.accumulate_grad_batches must be 1 with replicas")
    if str(trainer.get("precision") or 32) not in ("32", "32-true"):
        raise ConfigError(f"trainer.precision={trainer.precision!r}: replicas train in float32 only (32)")
    algorithm = str(trainer.get("gradient_clip_algorithm") or "norm")
    if algorithm not in ("norm", "value"):
        raise ConfigError(f"trainer.gradient_clip_algorithm={algorithm!r}; valid choices: norm, value")
    clip = trainer.get("gradient_clip_val")
    accelerator = str(trainer.get("accelerator") or "cpu")
    if accelerator not in ("cpu", "gpu", "cuda", "auto"):
        raise ConfigError(f"trainer.accelerator={accelerator!r}; replicas run on: cpu, gpu, cuda, auto")
    want_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if want_gpu and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accelerator!r} but no CUDA device is available")
    bar = (cfg.get("callbacks") or {}).get("progress_bar", "tqdm")
    device = "cuda" if want_gpu else "cpu"
    prefetch = str(cfg.get("replica_data") or "auto")
    check_choice("replica_data", prefetch, ("auto", *PREFETCH_MODES))
    return ReplicaSettings(
        replicas=replicas,
        seed=int(cfg.seed),
        batch_size=_positive_int("batch_size", cfg.get("batch_size", 1)),
        max_steps=max_steps,
        val_check_interval=val_every,
        clip_value=float(clip) if clip not in (None, 0) else None,
        clip_algorithm=algorithm,
        device=device,
        progress_bar=bar not in (None, "none", False),
        prefetch=default_prefetch(device) if prefetch == "auto" else prefetch,
    )


def regularizer_weight(reg: dict[str, Any], step: int) -> float:
    """λ(step): the same linear ramp as ``ArithmeticSystem.regularizer_weight``."""
    weight, start, end = float(reg["weight"]), int(reg["start"]), int(reg["end"])
    if weight == 0.0:
        return 0.0
    if end <= start:
        return weight if step >= start else 0.0
    return weight * min(1.0, max(0.0, (step - start) / (end - start)))


def seed_globals(seed: int) -> None:
    """What ``lightning.seed_everything`` seeds: Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class ReplicaRun:
    """R replicas of one configuration: tasks, stacked model, data, optimiser and per-replica bookkeeping.

    ``fit()`` trains and validates; ``test()`` evaluates the best checkpoints; ``rows()`` gives the
    per-replica results. Split up so tests can drive it step by step.
    """

    def __init__(self, cfg: DictConfig, settings: ReplicaSettings, shared: dict | None = None) -> None:
        """``shared``: a dict in which runs of the same task and seeds (e.g. other units, see
        ``replica_table.py``) keep one copy of the stacked evaluation sets."""
        from nalu_suite.data import BatchStream, TensorDataModule
        from nalu_suite.optim import build_optimizer, check_optim, whitening_pairs
        from nalu_suite.tasks import build_task
        from nalu_suite.train import to_plain

        self.settings = s = settings
        self.device = torch.device(s.device)
        task_cfg, unit_cfg = to_plain(cfg.task), to_plain(cfg.unit)
        self.optim_cfg = to_plain(cfg.optim)
        check_optim(self.optim_cfg)
        self.reg = {"weight": 0.0, "start": 0, "end": 0} | to_plain(cfg.get("regularizer"))

        self._data_dir = cfg.paths.data_dir
        self.shared = shared if shared is not None else {}
        self.data_key = json.dumps([task_cfg, s.seeds, s.batch_size], sort_keys=True, default=str)
        val_key = f"val {self.data_key}"
        self.tasks, models, streams = [], [], []
        val_data: list[torch.Tensor] = []
        for k, seed in enumerate(s.seeds):
            seed_globals(seed)
            task = build_task(task_cfg, unit_cfg, seed)
            models.append(task.build_model())
            datamodule = task.build_datamodule(self._data_dir, s.batch_size)
            if not (
                isinstance(datamodule, TensorDataModule) and isinstance(datamodule.train_set, BatchStream)
            ):
                raise ConfigError(
                    f"task={task.name}: replicas need a task whose training data is a BatchStream "
                    "(static_arith, recurrent_arith)"
                )
            streams.append(datamodule.train_set)
            if val_key not in self.shared:
                val_data = _put_replica(val_data, k, s.replicas, [ds.tensors for ds in datamodule.val_sets])
            self.eval_batch_size = int(datamodule.eval_batch_size)
            self.tasks.append(task)
        self.task = self.tasks[0]  # loss, predict and split names are the same code for every replica
        if val_key not in self.shared:
            self.shared[val_key] = [tuple(t.to(self.device) for t in split) for split in val_data]
        self.val_data = self.shared[val_key]
        self.thresholds = [task.success_threshold() for task in self.tasks]

        self.model = StackedModel([m.to(self.device) for m in models])
        named = ((n.removeprefix("model."), p) for n, p in self.model.params.items())
        pairs = whitening_pairs(named, self.task.input_whitening())
        built = build_optimizer(list(self.model.params.values()), self.optim_cfg, s.max_steps, pairs)
        if isinstance(built, dict):
            self.optimizer, self.scheduler = built["optimizer"], built["lr_scheduler"]["scheduler"]
        else:
            self.optimizer, self.scheduler = built, None
        self.batches = StackedBatches(streams, prefetch=s.prefetch, device=self.device)
        self._loss_plain = self.model.vmap(self._replica_loss, n_batched_args=2)
        self._loss_reg = self.model.vmap(self._replica_loss_with_reg, n_batched_args=2)
        self._predict = self.model.vmap(self._replica_predict, n_batched_args=2)

        R = s.replicas
        self.step = 0
        self.alive = torch.ones(R, dtype=torch.bool, device=self.device)
        self.diverged_at: list[int | None] = [None] * R
        self._frozen: dict[str, torch.Tensor] | None = None
        self.solved_at: list[int | None] = [None] * R
        self.best_score = [math.inf] * R  # as logged (float32), NaN counted as +inf
        self.best_step: list[int | None] = [None] * R
        self.best_params: dict[str, torch.Tensor] | None = None
        self.last_logged: list[dict[str, float]] = [{} for _ in range(R)]
        self.history: list[dict[str, float]] = []
        self.train_logged: list[dict[str, float]] = [{} for _ in range(R)]

    # --- the per-replica functions that vmap maps ----------------------------------------------------------
    def _replica_loss(self, state, x, y):
        return self.task.loss(self.model.functional(state), (x, y))

    def _replica_loss_with_reg(self, state, x, y):
        return self._replica_loss(state, x, y), self.model.call(state, "regularizer")

    def _replica_predict(self, state, x, y):
        return self.task.predict(self.model.functional(state), (x, y))

    # --- training ------------------------------------------------------------------------------------------
    def train_step(self, batch: tuple[torch.Tensor, ...]) -> None:
        lam = regularizer_weight(self.reg, self.step)
        self.optimizer.zero_grad(set_to_none=True)
        if lam:
            task_loss, reg = self._loss_reg(self.model.state(), *batch)
            loss = task_loss + lam * reg
        else:
            task_loss = loss = self._loss_plain(self.model.state(), *batch)
        finite = torch.isfinite(loss)
        if not bool(finite.all()) and not bool(finite[self.alive].all()):
            self._mark_diverged(~finite & self.alive)
        if bool(self.alive.all()):
            loss.sum().backward()
        else:
            torch.where(self.alive, loss, torch.zeros_like(loss)).sum().backward()
            for p in self.model.params.values():
                if p.grad is not None:
                    p.grad[~self.alive] = 0
        self._clip_gradients()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.model.project_()
        if self._frozen is not None:
            self.model.load_(self._frozen, replicas=~self.alive)
        self.step += 1
        self._last_loss, self._last_lam = task_loss.detach(), lam

    def _mark_diverged(self, newly: torch.Tensor) -> None:
        for k in newly.nonzero().flatten().tolist():
            self.diverged_at[k] = self.step
            log.warning("replica %d (seed %d) diverged at step %d", k, self.settings.seeds[k], self.step)
        current = self.model.snapshot()
        if self._frozen is None:
            self._frozen = current
        else:
            for name, value in current.items():
                mask = newly.view(-1, *([1] * (value.dim() - 1)))
                self._frozen[name] = torch.where(mask, value, self._frozen[name])
        self.alive &= ~newly

    @torch.no_grad()
    def _clip_gradients(self) -> None:
        """``torch.nn.utils.clip_grad_{norm,value}_`` (what Lightning calls), per replica."""
        if self.settings.clip_value is None:
            return
        grads = [p.grad for p in self.model.params.values() if p.grad is not None]
        limit = self.settings.clip_value
        if self.settings.clip_algorithm == "value":
            for g in grads:
                g.clamp_(-limit, limit)
            return
        # per-tensor norms of every replica's slice, as clip_grad_norm_ computes them (bitwise the same)
        replicas = self.settings.replicas
        slices = [g[k] for k in range(replicas) for g in grads]
        norms = torch.stack(torch._foreach_norm(slices, 2.0)).view(replicas, len(grads))
        total = torch.linalg.vector_norm(norms, 2.0, dim=1)
        factor = torch.clamp(limit / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(factor.view(-1, *([1] * (g.dim() - 1))))

    def _record_train_metrics(self) -> None:
        losses = self._last_loss.tolist()
        for k, row in enumerate(self.train_logged):
            row["train/loss"] = as_logged(losses[k])
            if self._last_lam:
                row["train/reg_weight"] = as_logged(self._last_lam)

    # --- evaluation ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, stage: str) -> list[dict[str, float]]:
        """Each replica's metrics on the ``val`` or ``test`` splits as ``<split>/<metric>`` (unrounded)."""
        splits = self.task.val_splits if stage == "val" else self.task.test_splits
        data = self.val_data if stage == "val" else self._test_data()
        R = self.settings.replicas
        logged: list[dict[str, float]] = [{} for _ in range(R)]
        for split, tensors in zip(splits, data, strict=True):
            metrics = [task.make_metric(split) for task in self.tasks]
            n = tensors[0].shape[1]
            per_sample = max(1, int(np.prod(tensors[0].shape[2:])))
            for lo in range(0, n, self.eval_batch_size):
                batch = tuple(t[:, lo : lo + self.eval_batch_size] for t in tensors)
                size = batch[0].shape[1] * per_sample
                group = max(1, EVAL_ELEMENTS_PER_CALL // max(1, size))
                preds, targets = [], []
                for start in range(0, R, group):
                    part = slice(start, min(start + group, R))
                    pred, target = self._predict(self.model.state(part), *(t[part] for t in batch))
                    preds.append(pred)
                    targets.append(target)
                pred, target = torch.cat(preds), torch.cat(targets)
                for k, metric in enumerate(metrics):
                    metric.update(pred[k], target[k])
            for k, (task, metric) in enumerate(zip(self.tasks, metrics, strict=True)):
                values = {name: float(v) for name, v in metric.compute().items()}
                for name, value in task.finalize_metrics(split, values).items():
                    logged[k][f"{split}/{name}"] = value
        sparsity = self.model.sparsity_error().tolist()
        for k in range(R):
            logged[k]["sparsity_error"] = float(sparsity[k])
        return logged

    def _test_data(self) -> list[tuple[torch.Tensor, ...]]:
        """The replicas' test sets, stacked (drawn again: the tasks' fixed sets are deterministic)."""
        key = f"test {self.data_key}"
        if key not in self.shared:
            self.val_data = []  # no longer needed; frees the memory before the test sets are drawn
            self.shared.pop(f"val {self.data_key}", None)
            test_data: list = []
            for k, task in enumerate(self.tasks):
                datamodule = task.build_datamodule(self._data_dir, self.settings.batch_size)
                test_data = _put_replica(
                    test_data, k, self.settings.replicas, [ds.tensors for ds in datamodule.test_sets]
                )
            self.shared[key] = [tuple(t.to(self.device) for t in split) for split in test_data]
        return self.shared[key]

    def validate(self) -> None:
        """One validation at the current step: metrics, ``solved_at``, best checkpoints."""
        logged = self.evaluate("val")
        watched, monitor = self.task.solved_metric, self.task.monitor
        improved = torch.zeros(self.settings.replicas, dtype=torch.bool)
        for k, values in enumerate(logged):
            if self.diverged_at[k] is not None:
                continue
            value = values.get(watched) if watched else None
            threshold = self.thresholds[k]
            unsolved = self.solved_at[k] is None and value is not None and threshold is not None
            if unsolved and math.isfinite(value) and value < threshold:
                self.solved_at[k] = self.step
            score = as_logged(values[monitor]) if monitor in values else math.nan
            score = math.inf if math.isnan(score) else score
            if self.best_step[k] is None or score < self.best_score[k]:
                self.best_score[k], self.best_step[k] = score, self.step
                improved[k] = True
            shown = {name: as_logged(v) for name, v in values.items()}
            if self.solved_at[k] is not None:
                shown["solved_at"] = float(self.solved_at[k])
            self.last_logged[k] = shown
            self.history.append({"step": self.step, "seed": self.settings.seeds[k]} | shown)
        current = self.model.snapshot()
        if self.best_params is None:
            self.best_params = current
        else:
            for name, value in current.items():
                mask = improved.to(value.device).view(-1, *([1] * (value.dim() - 1)))
                self.best_params[name] = torch.where(mask, value, self.best_params[name])

    def fit(self) -> None:
        s = self.settings
        # the uniform kernel is loaded already (the evaluation sets were drawn with it), so the forked
        # data worker inherits it
        log.info(
            "replica data drawn by: %s; uniform draws: %s", self.batches.prefetch, fast_uniform.backend()
        )
        batches = iter(self.batches)  # starts the data worker (a forked process) before the bar's thread
        bar = _progress(s)
        try:
            while self.step < s.max_steps and bool(self.alive.any()):
                self.train_step(next(batches))
                if self.step % s.val_check_interval == 0:
                    self.validate()
                    self._log_progress()
                    if bar is not None:
                        bar.set_postfix_str(
                            f"solved {sum(v is not None for v in self.solved_at)}/{s.replicas}"
                        )
                if bar is not None:
                    bar.update(1)
        finally:
            batches.close()
            if bar is not None:
                bar.close()
        self._record_train_metrics()

    def _log_progress(self) -> None:
        solved = sum(v is not None for v in self.solved_at)
        monitor = self.task.monitor
        values = [row[monitor] for row in self.last_logged if monitor in row]
        median = float(np.median(values)) if values else math.nan
        log.info(
            "step %d: solved %d/%d, median %s %.4g, diverged %d",
            self.step,
            solved,
            self.settings.replicas,
            monitor,
            median,
            sum(d is not None for d in self.diverged_at),
        )

    def test(self) -> list[dict[str, float]]:
        """Test metrics of each replica's best checkpoint (its last weights if it was never validated)."""
        if self.best_params is not None:
            self.model.load_(self.best_params)
        logged = self.evaluate("test")
        return [{name: as_logged(v) for name, v in row.items()} for row in logged]

    def rows(self, test_logged: list[dict[str, float]], wall_time: float) -> list[dict[str, Any]]:
        """Per-replica results, with the keys and values ``train.collect_results`` gives a plain run."""
        rows = []
        sparsity = self.model.sparsity_error().tolist()  # of the loaded (best) weights
        metric = self.task.success_metric
        success_name = metric.rsplit("/", 1)[0] + "/success" if metric else None
        for k in range(self.settings.replicas):
            row: dict[str, Any] = dict(self.last_logged[k]) | self.train_logged[k] | test_logged[k]
            if self.best_step[k] is not None:
                row[f"{self.task.monitor}_best"] = self.best_score[k]
            threshold = self.thresholds[k]
            if threshold is not None and metric in row:
                value = row[metric]
                row[success_name] = float(math.isfinite(value) and value < threshold)
                row["success_threshold"] = threshold
            row["solved_at"] = self._reported_solved_at(k)
            row["sparsity_error"] = float(sparsity[k])
            row["train_steps"] = float(self.step)
            row["wall_time_s"] = round(wall_time / self.settings.replicas, 4)
            if self.diverged_at[k] is not None:
                row["diverged_at"] = float(self.diverged_at[k])
                if success_name in row:
                    row[success_name] = 0.0
            rows.append(dict(sorted(row.items())) | {"seed": self.settings.seeds[k]})
        return rows

    def _reported_solved_at(self, k: int) -> float:
        """``solved_at`` as the plain run reports it: the value saved with the best checkpoint, which the
        final test restores (so a replica first solved after its best-by-``monitor`` step reports none)."""
        solved, best = self.solved_at[k], self.best_step[k]
        if solved is None or (best is not None and solved > best):
            return math.nan
        return float(solved)

    def save(self, run_dir: Path) -> None:
        """``checkpoints/replicas.pt`` (stacked best weights, seeds) and ``replicas_validation.csv``."""
        ckpt_dir = run_dir / "checkpoints"
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "seeds": self.settings.seeds,
                "best": {k: v.cpu() for k, v in (self.best_params or self.model.snapshot()).items()},
                "best_step": self.best_step,
            },
            ckpt_dir / "replicas.pt",
        )
        if self.history:
            names = sorted({k for row in self.history for k in row} - {"step", "seed"})
            with open(run_dir / "replicas_validation.csv", "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=["step", "seed", *names])
                writer.writeheader()
                writer.writerows(self.history)


def _put_replica(stacked: list, k: int, replicas: int, splits) -> list[tuple[torch.Tensor, ...]]:
    """Copy replica ``k``'s ``splits`` (tensor tuples) into ``(R, ...)`` buffers, made on first use."""
    if not stacked:
        stacked = [tuple(torch.empty((replicas, *t.shape), dtype=t.dtype) for t in split) for split in splits]
    for buffers, split in zip(stacked, splits, strict=True):
        for buffer, tensor in zip(buffers, split, strict=True):
            buffer[k].copy_(tensor)
    return stacked


def _progress(settings: ReplicaSettings):
    if not settings.progress_bar:
        return None
    from tqdm import tqdm

    return tqdm(total=settings.max_steps, desc=f"{settings.replicas} replicas", unit="step", mininterval=1.0)


def train_replicas(cfg: DictConfig) -> dict[str, Any]:
    """Train ``cfg.replicas`` seeds of ``cfg`` as one batched run; write ``results.json``; return it."""
    from nalu_suite.train import configure_torch, validate

    started = time.time()
    validate(cfg)
    settings = replica_settings(cfg)
    configure_torch(cfg)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    run = ReplicaRun(cfg, settings)
    run.fit()
    test_logged = run.test()
    wall = time.time() - started
    rows = run.rows(test_logged, wall)
    metric = run.task.success_metric
    success_name = metric.rsplit("/", 1)[0] + "/success" if metric else None
    results = summarize(rows, success_name) | {
        "seed": settings.seed,
        "train_steps": float(run.step),
        "wall_time_s": round(wall, 2),
        "seed_steps_per_s": round(settings.replicas * run.step / wall, 1),
        "replicas": rows,
    }
    run.save(run_dir)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2, allow_nan=True) + "\n")
    _print_summary(results, cfg, success_name, run.task.unit.get("name", cfg.unit.name))
    log.info("results written to %s", run_dir / "results.json")
    return results


def _print_summary(results: dict[str, Any], cfg: DictConfig, success_name: str | None, unit: str) -> None:
    from rich.console import Console
    from rich.table import Table

    R = results["replicas_count"]
    table = Table(title=f"{cfg.task.name} · unit={unit} · seeds {cfg.seed}..{int(cfg.seed) + R - 1}")
    table.add_column("metric")
    table.add_column(f"over {R} replicas", justify="right")
    if success_name and f"{success_name}_rate" in results:
        rate = results[f"{success_name}_rate"]
        lo, hi = results[f"{success_name}_rate_ci_low"], results[f"{success_name}_rate_ci_high"]
        table.add_row(
            f"{success_name} rate [95% Wilson]", f"{100 * rate:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"
        )
    table.add_row("solved_at (median)", f"{results['solved_at_median']:.6g}")
    for name, value in results.items():
        if (
            name not in ("replicas", "replicas_count")
            and isinstance(value, (int, float))
            and "rate" not in name
        ):
            table.add_row(f"{name} (mean)" if "/" in name else name, f"{value:.6g}")
    Console().print(table)
