"""Many seeds in one run: ``python train.py task=static_arith replicas=100``.

Madsen & Johansen (ICLR 2020) judge a unit by its success rate over 100 seeds. The models are tiny, so
one training step of one seed is dominated by fixed per-step overhead; ``replicas=R`` trains R
independent models in one process as one batched computation instead:

* **Replica k of a run with ``seed=s`` is the plain run with ``seed=s+k``**: its own initialisation
  (the global torch generator seeded with ``s+k`` before ``task.build_model()``, as
  ``L.seed_everything`` does), its own task (subsets drawn from ``s+k``), its own training stream
  (the plain run's ``BatchStream``) and fixed evaluation sets, its own optimiser state, regulariser,
  projection, gradient clipping, validation metrics, ``solved_at`` and best checkpoint.
* The parameters of the R models are stacked (``replicas.model.StackedModel``); ``torch.func.vmap`` runs
  the model's own code over them. The loss that is back-propagated is the **sum** of the replicas'
  losses, so each replica's gradient is exactly its own, and the optimisers (Adam, AdamW, SGD, RMSprop:
  all elementwise) act on each replica as R separate optimisers would. Gradient clipping by norm is
  computed per replica.
* Semantics follow the Lightning run of ``train.py``: validation every ``trainer.val_check_interval``
  steps, in evaluation mode (``model.eval()``, ``StackedModel.evaluating``); ``solved_at`` = the first
  validation step whose ``task.solved_metric`` is below ``task.success_threshold()``; the test metrics
  come from the replica's best checkpoint by ``task.monitor`` (minimised; the first of equal values is
  kept; compared as logged, in float32); the reported ``solved_at`` is the one stored with that
  checkpoint (as the plain run restores it).
* A replica whose loss becomes NaN/inf (where a plain run stops with ``DivergenceError``) is frozen
  at its last finite weights, counted as a failure and marked with ``diverged_at``; the others go on.
* ``reinit.every > 0``: a stuck replica is re-initialised as its plain run would be (``nalu_suite.reinit``:
  the same rule on its own losses, the same new weights); its count is the row's ``train/reinits``.

This module holds the batched model, its optimiser and one training step and evaluation of all R
replicas (``ReplicaRun``); ``tracking`` keeps each replica's bookkeeping, ``fit`` drives the loop.
Not supported with replicas: resuming (``ckpt_path``), Lightning callbacks, gradient accumulation,
mixed precision.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from nalu_suite.data import BatchStream, TensorDataModule
from nalu_suite.errors import ConfigError
from nalu_suite.metrics import ErrorStats, StackedErrorStats
from nalu_suite.optim import build_optimizer, check_optim, whitening_pairs
from nalu_suite.reinit import StuckRuns, fresh_parameters
from nalu_suite.replicas.compiled import compile_fn
from nalu_suite.replicas.data import StackedBatches
from nalu_suite.replicas.fused_step import FusedStep, unfused_reason
from nalu_suite.replicas.model import StackedModel, per_replica, slice_state
from nalu_suite.replicas.settings import ReplicaSettings
from nalu_suite.replicas.tracking import ReplicaTracker
from nalu_suite.results import as_logged
from nalu_suite.rng import seed_globals
from nalu_suite.runtime import to_plain
from nalu_suite.schedule import NO_REGULARIZER, regularizer_open, regularizer_weight
from nalu_suite.tasks import build_task

log = logging.getLogger("nalu_suite")

#: inputs (elements) evaluated per vmap call; bounds the memory of evaluating many replicas at once
EVAL_ELEMENTS_PER_CALL = 1 << 23


class ReplicaRun:
    """R replicas of one configuration: their tasks, stacked model, data, optimiser and tracker.

    ``train_step`` and ``validate`` are what ``fit.fit_lockstep`` calls; ``test`` evaluates the best
    checkpoints; ``rows`` gives the per-replica results.
    """

    def __init__(self, cfg: DictConfig, settings: ReplicaSettings, shared: dict | None = None) -> None:
        """``shared``: a dict in which runs of the same task and seeds (e.g. other units, see
        ``replicas.table``) keep one copy of the stacked evaluation sets."""
        self.settings = s = settings
        self.config = {  # what trains, resolved (paths, loggers and callbacks left out)
            key: to_plain(value) if OmegaConf.is_config(value) else value
            for key, value in cfg.items()
            if key not in ("hydra", "paths", "logger", "callbacks")
        }
        self.device = torch.device(s.device)
        task_cfg, unit_cfg = to_plain(cfg.task), to_plain(cfg.unit)
        self.optim_cfg = to_plain(cfg.optim)
        check_optim(self.optim_cfg)
        self.reg = NO_REGULARIZER | to_plain(cfg.get("regularizer"))
        self.stuck = StuckRuns(to_plain(cfg.get("reinit")), runs=s.replicas, capacity=s.max_steps + 1)

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
        self.tracker = ReplicaTracker(self.tasks, s.seeds)
        if self.stuck.enabled:  # what the plain run logs from its first step on
            for row in self.tracker.train_logged:
                row["train/reinits"] = 0.0

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
        self._fused: FusedStep | None = None
        if s.compile:  # replica_compile: the whole step as one graph (fused_step.py), else the loss
            reason = unfused_reason(self.model, self.optimizer, s.clip_value)
            if reason is None:
                self._fused = FusedStep(self.model, self.optimizer, self._loss_plain, self._loss_reg)
            else:
                log.info("replica_compile: the loss is compiled, the optimiser's step is not (%s)", reason)
                self._loss_plain, self._loss_reg = compile_fn(self._loss_plain), compile_fn(self._loss_reg)
        self._warmed: set = set()  # compiled graphs (steps, evaluation layouts) that have run once
        self.compile_s = 0.0  # wall time of the calls that compiled them
        self._predict = self.model.vmap(self._replica_predict, n_batched_args=2)
        if s.compile:  # evaluation too: one more graph per shape of an evaluation call
            self._predict = compile_fn(self._predict)

        self.step = 0
        self.alive = torch.ones(s.replicas, dtype=torch.bool, device=self.device)
        self._frozen: dict[str, torch.Tensor] | None = None
        self.last_loss: torch.Tensor | None = None
        self.latest_monitor: torch.Tensor | None = None  # (R,) task.monitor at the last validation
        self.last_reg_weight = 0.0

    # --- the per-replica functions that vmap maps ----------------------------------------------------------
    def _replica_loss(self, state, x, y):
        return self.task.loss(self.model.functional(state), (x, y))

    def _replica_loss_with_reg(self, state, x, y):
        return self._replica_loss(state, x, y), self.model.call(state, "regularizer")

    def _replica_predict(self, state, x, y):
        return self.task.predict(self.model.functional(state), (x, y))

    # --- training ------------------------------------------------------------------------------------------
    def train_step(self, batch: tuple[torch.Tensor, ...]) -> None:
        """One optimiser step of every live replica on its slice of ``batch``; a replica whose loss is no
        longer finite is frozen at its last weights (``diverged_at``), the others go on."""
        if self.step == 0 and self.latest_monitor is None and self.stuck.watches_validation:
            self.latest_monitor = self._monitor(self.evaluate("val"))  # the untrained model's (reinit.py)
        lam = regularizer_weight(self.reg, self.step)  # the schedule's, logged as train/reg_weight
        scale = self._regularizer_scale(lam)  # lam, or (regularizer.gate) lam where the gate is open
        started = time.perf_counter()
        self.task.on_train_step(self.step)  # the one task whose loss code every replica runs
        if self._fused is not None:
            task_loss = self._fused_step(batch, scale)
            variant = self._fused.last_graph
        else:
            task_loss = self._eager_step(batch, scale)
            variant = "plain" if scale is None else "reg"
        if self.scheduler is not None:
            with warnings.catch_warnings():  # a fused step never calls optimizer.step(), which it checks
                warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
                self.scheduler.step()
        watched = self.stuck.watched(task_loss, self.latest_monitor) if self.stuck.enabled else None
        if watched is not None:
            self._reinit(self.stuck.record(self.step, watched) & self.alive)
        self.step += 1
        self.last_loss, self.last_reg_weight = task_loss.detach(), lam
        self._count_compiling(variant, started)

    def _count_compiling(self, graph, started: float) -> None:
        """Compiled runs: the first call of ``graph`` (a step variant, an evaluation layout) compiled it, so
        its wall time since ``started`` goes to ``compile_s``, the warm-up reported apart from training."""
        if self.settings.compile and graph not in self._warmed:
            self._warmed.add(graph)
            self.compile_s += time.perf_counter() - started

    def _fused_step(self, batch, scale) -> torch.Tensor:
        """The step as one compiled graph (``fused_step.FusedStep``); marks the replicas it froze."""
        if scale is not None:  # one graph for a scalar and a per-replica scale
            scale = torch.as_tensor(scale, dtype=torch.float32, device=self.device)
            scale = scale.expand(self.settings.replicas)
        task_loss, stepped = self._fused(batch, scale, self.alive)
        if not bool(stepped.all()) and not bool(stepped[self.alive].all()):
            self._mark_diverged(~stepped & self.alive)  # their weights are those before this step
        return task_loss

    def _eager_step(self, batch, scale) -> torch.Tensor:
        """Loss (compiled or not), backward, clipping, optimiser, projection; returns the task loss."""
        self.optimizer.zero_grad(set_to_none=True)
        if scale is not None:
            task_loss, reg = self._loss_reg(self.model.state(), *batch)
            loss = task_loss + scale * reg
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
        self.model.project_()
        if self._frozen is not None:
            self.model.load_(self._frozen, replicas=~self.alive)
        return task_loss

    def _regularizer_scale(self, lam: float) -> float | torch.Tensor | None:
        """The regulariser's weight: ``lam``, or with ``regularizer.gate`` (``schedule.regularizer_open``)
        ``lam`` where a replica's gate is open and 0 where it is closed; None where it counts for none."""
        is_open = regularizer_open(self.reg, self.latest_monitor) if lam else False
        if isinstance(is_open, torch.Tensor):
            if bool(is_open.all()):
                return lam
            return lam * is_open.to(torch.float32) if bool(is_open.any()) else None
        return lam if is_open else None

    def _mark_diverged(self, newly: torch.Tensor) -> None:
        for k in newly.nonzero().flatten().tolist():
            self.tracker.diverged_at[k] = self.step
            log.warning("replica %d (seed %d) diverged at step %d", k, self.settings.seeds[k], self.step)
        current = self.model.snapshot()
        if self._frozen is None:
            self._frozen = current
        else:
            for name, value in current.items():
                self._frozen[name] = torch.where(per_replica(newly, value), value, self._frozen[name])
        self.alive &= ~newly

    @torch.no_grad()
    def _reinit(self, fired: torch.Tensor) -> None:
        """Re-initialise the replicas in ``fired`` with their plain runs' new weights (``reinit.py``)."""
        if not bool(fired.any()):
            return
        self.stuck.cleared(fired)
        for k in fired.nonzero().flatten().tolist():
            fresh = fresh_parameters(self.tasks[k], self.settings.seeds[k], self.step)
            for name, value in self.model.params.items():
                value[k].copy_(fresh[name.removeprefix("model.")])
            self.tracker.train_logged[k]["train/reinits"] = float(self.stuck.count[k])

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
            g.mul_(per_replica(factor, g))

    def record_train_loss(self) -> None:
        """Keep the last step's training loss as each replica's ``train/loss`` (what Lightning logs last)."""
        if self.last_loss is not None:
            self.tracker.record_train_loss(self.last_loss.tolist(), self.last_reg_weight)

    # --- evaluation ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, stage: str) -> list[dict[str, float]]:
        """Each replica's metrics on the ``val`` or ``test`` splits as ``<split>/<metric>`` (unrounded)."""
        splits = self.task.val_splits if stage == "val" else self.task.test_splits
        data = self.val_data if stage == "val" else self._test_data()
        R = self.settings.replicas
        logged: list[dict[str, float]] = [{} for _ in range(R)]
        with self.model.evaluating():  # as Lightning evaluates a plain run: model.eval()
            for split, tensors in zip(splits, data, strict=True):
                self._evaluate_split(split, tensors, logged)
        sparsity = self.model.sparsity_error().tolist()
        for k in range(R):
            logged[k]["sparsity_error"] = float(sparsity[k])
        return logged

    def _evaluate_split(self, split: str, tensors: tuple[torch.Tensor, ...], logged: list[dict]) -> None:
        """Add each replica's ``<split>/<metric>`` on ``tensors`` (stacked per replica) to ``logged``."""
        if self.settings.compile:
            self._record_baselines(split, tensors)
        values = self._metric_values(split, tensors, self.model.state())
        for k, task in enumerate(self.tasks):
            for name, value in task.finalize_metrics(split, values[k]).items():
                logged[k][f"{split}/{name}"] = value

    def _metric_values(self, split: str, tensors: tuple[torch.Tensor, ...], state) -> list[dict[str, float]]:
        """Each replica's ``make_metric(split)`` values on its ``tensors``, with the stacked weights ``state``
        (``StackedModel.state``'s layout). The tasks' default ``ErrorStats`` is kept for all R at once
        (``StackedErrorStats``, the same sums), which saves building R torchmetrics objects per call."""
        R = self.settings.replicas
        stacked = type(self.task.make_metric(split)) is ErrorStats
        metrics = [StackedErrorStats()] if stacked else [task.make_metric(split) for task in self.tasks]
        n = tensors[0].shape[1]
        per_sample = max(1, int(np.prod(tensors[0].shape[2:])))
        for lo in range(0, n, self.eval_batch_size):
            batch = tuple(t[:, lo : lo + self.eval_batch_size] for t in tensors)
            size = batch[0].shape[1] * per_sample
            group = max(1, EVAL_ELEMENTS_PER_CALL // max(1, size))
            preds, targets = [], []
            for start in range(0, R, group):
                part = slice(start, min(start + group, R))
                pred, target = self._predict_part(slice_state(state, part), tuple(t[part] for t in batch))
                preds.append(pred)
                targets.append(target)
            pred, target = torch.cat(preds), torch.cat(targets)
            if stacked:
                metrics[0].update(pred, target)
            else:
                for k, metric in enumerate(metrics):
                    metric.update(pred[k], target[k])
        if stacked:
            values = {name: v.tolist() for name, v in metrics[0].compute().items()}
            return [{name: v[k] for name, v in values.items()} for k in range(R)]
        return [{name: float(v) for name, v in metric.compute().items()} for metric in metrics]

    def _predict_part(self, state, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions and targets of a group of replicas. Compiled, the first call with each batch
        layout compiles a graph (1-3 s), counted in ``compile_s`` as the first steps are."""
        started = time.perf_counter()
        result = self._predict(state, *batch)
        self._count_compiling(("predict", *((t.shape, t.stride()) for t in batch)), started)
        return result

    def _record_baselines(self, split: str, tensors: tuple[torch.Tensor, ...]) -> None:
        """Compiled runs: the replicas' baseline MSEs (``Task.baseline_models``, the same models for every
        seed) through the compiled evaluation, one pass of all R sets per model, instead of R eager passes
        per model in each task (the static table's ten units: about 56 s per op at R = 100). Equal to the
        eager baselines up to rounding (a float64 sum in another order, compiled kernels)."""
        models = self.task.baseline_models(split)
        if not models:
            return
        mses = [
            [values["mse"] for values in self._metric_values(split, tensors, self.model.broadcast_state(m))]
            for m in models
        ]
        for k, task in enumerate(self.tasks):
            task.record_baseline(split, [per_model[k] for per_model in mses])

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
        self.latest_monitor = self._monitor(logged)
        self.tracker.record_validation(self.step, logged, self.model.snapshot())

    def _monitor(self, logged: list[dict[str, float]]) -> torch.Tensor:
        """``(R,)``: each replica's ``task.monitor`` in ``logged`` (NaN where it is missing)."""
        monitor = self.task.monitor
        return torch.tensor([row.get(monitor, math.nan) for row in logged], device=self.device)

    def test(self) -> list[dict[str, float]]:
        """Test metrics of each replica's best checkpoint (its last weights if it was never validated)."""
        if self.tracker.best_params is not None:
            self.model.load_(self.tracker.best_params)
        return [{name: as_logged(v) for name, v in row.items()} for row in self.evaluate("test")]

    def rows(self, test_logged: list[dict[str, float]], wall_time: float) -> list[dict]:
        """Per-replica results (``tracking.ReplicaTracker.rows``) of the loaded (best) weights."""
        sparsity = self.model.sparsity_error().tolist()
        return self.tracker.rows(test_logged, sparsity, self.step, wall_time)


def _put_replica(stacked: list, k: int, replicas: int, splits) -> list[tuple[torch.Tensor, ...]]:
    """Copy replica ``k``'s ``splits`` (tensor tuples) into ``(R, ...)`` buffers, made on first use."""
    if not stacked:
        stacked = [tuple(torch.empty((replicas, *t.shape), dtype=t.dtype) for t in split) for split in splits]
    for buffers, split in zip(stacked, splits, strict=True):
        for buffer, tensor in zip(buffers, split, strict=True):
            buffer[k].copy_(tensor)
    return stacked
