"""What makes a run resumable (``ckpt_path=last``): its checkpoints, its logged history, its config.

* ``RunCheckpoint`` (``conf/callbacks/default.yaml``): Lightning's ``ModelCheckpoint`` whose
  ``last.ckpt`` is rewritten at *every* validation (and when training ends), not only when ``best.ckpt``
  improves, and which keeps writing ``best.ckpt``/``last.ckpt`` (no ``-v1`` copies) in a run directory
  that was moved or copied. Before each checkpoint it flushes the loggers, so the logged history on disk
  reaches at least the checkpoint's step.
* ``ResumableCSVLogger`` (``conf/logger/csv.yaml``): a resumed run keeps the rows of ``csv/metrics.csv``
  logged before the checkpoint's step and appends the rest (a fresh run starts a new file).
* ``check_resume``: refuse to resume a checkpoint trained with another task/unit/optim/regularizer/seed.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from nalu_suite.errors import ConfigError

#: the hyper-parameters a resumed run must share with its checkpoint (``max_steps`` may grow)
RESUME_KEYS = ("task", "unit", "optim", "regularizer", "seed")


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` where ``save_last`` means "the state at the latest validation".

    Lightning writes ``last.ckpt`` only together with a top-k checkpoint, so a run whose best came at
    step 50 of 300 left ``last.ckpt`` at step 50 and ``ckpt_path=last`` went back to it.
    """

    @property
    def state_key(self) -> str:
        # the name Lightning's own ModelCheckpoint stores its state under: checkpoints written before
        # this class existed (and after) restore the best score and paths either way
        return super().state_key.replace(type(self).__qualname__, ModelCheckpoint.__qualname__, 1)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)  # best.ckpt (and last.ckpt with it) if improved
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_now(trainer)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_now(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        super().on_train_end(trainer, pl_module)
        self._save_last_now(trainer)  # the steps after the last validation

    def _save_last_now(self, trainer) -> None:
        # skipped when this step is saved already, during the sanity check and outside fit
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        """Flush the loggers before the file is written: a run killed after this checkpoint has its
        logged history on disk up to the checkpoint's step (``ResumableCSVLogger`` keeps it)."""
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.save()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resuming in a moved or copied run directory: the checkpoint names its old ``dirpath``; its
        files that are in this ``dirpath`` now (``best.ckpt``, ``last.ckpt``) are taken as moved, so the
        best score is kept and the same files are updated (Lightning dropped the score, kept the old
        ``best_model_path`` and, with the version counter, wrote ``best-v1.ckpt``)."""
        old = state_dict.get("dirpath")
        if old and self.dirpath and os.path.normpath(old) != os.path.normpath(self.dirpath):
            here = Path(self.dirpath)

            def moved(path: str | None) -> str | None:
                if path and Path(path).parent == Path(old) and (here / Path(path).name).exists():
                    return str(here / Path(path).name)
                return path

            state_dict = dict(state_dict, dirpath=self.dirpath)
            for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
                if key in state_dict:
                    state_dict[key] = moved(state_dict[key])
            if "best_k_models" in state_dict:
                state_dict["best_k_models"] = {moved(k): v for k, v in state_dict["best_k_models"].items()}
        super().load_state_dict(state_dict)


class _ResumableWriter(ExperimentWriter):
    """Lightning's writer deletes an existing ``metrics.csv``; resuming, this one keeps its rows with
    ``step < keep_before`` (logged before the checkpoint) and appends after them."""

    def __init__(self, log_dir: str, keep_before: int | None) -> None:
        self.keep_before = keep_before
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if self.keep_before is None or not self._fs.isfile(self.metrics_file_path):
            super()._check_log_dir_exists()  # a fresh run: a new file
            return
        with self._fs.open(self.metrics_file_path, "r", newline="") as file:
            reader = csv.DictReader(file)
            header = list(reader.fieldnames or [])
            rows = [row for row in reader if _step(row) < self.keep_before]
        with self._fs.open(self.metrics_file_path, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
        self.metrics_keys = header  # new columns rewrite the header (Lightning's save)


def _step(row: dict[str, str]) -> float:
    try:
        return float(row.get("step") or "inf")
    except ValueError:
        return float("inf")


class ResumableCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``metrics.csv`` survives ``ckpt_path=...`` in the same run directory.

    ``train()`` calls ``resume_from(global_step)`` before training: rows logged at steps before the
    checkpoint's ``global_step`` are kept (the checkpoint flushed them), the rows an interrupted run
    logged after it are dropped (the resumed run logs them again), new rows are appended. Without it,
    an existing file is replaced, as Lightning does.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.resume_step: int | None = None

    def resume_from(self, global_step: int) -> None:
        self.resume_step = int(global_step)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ResumableWriter(self.log_dir, self.resume_step)
        return self._experiment


class _Unset:
    def __repr__(self) -> str:
        return "unset"


_UNSET = _Unset()


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat |= _flatten(item, f"{prefix}.{key}")
        return flat
    return {prefix: value}


def config_differences(saved: dict[str, Any], current: dict[str, Any], keys=RESUME_KEYS) -> list[str]:
    """``["task.op: 'div' (checkpoint) != 'mul'", ...]`` for the resume keys whose values differ. A key
    the checkpoint lacks equals ``null`` now (a setting added later, off by default, e.g.
    ``regularizer.growth``)."""
    differences = []
    for key in keys:
        a, b = _flatten(saved.get(key), key), _flatten(current.get(key), key)
        for name in sorted(set(a) | set(b), key=lambda n: (n not in a, n)):
            left, right = a.get(name, _UNSET), b.get(name, _UNSET)
            if left is _UNSET and right is None:
                continue
            if left != right:
                differences.append(f"{name}={left!r} in the checkpoint, {right!r} now")
    return differences


def check_resume(path: str, system_kwargs: dict[str, Any]) -> int:
    """Refuse (``ConfigError``) a checkpoint of another task (naming it) or trained with other
    task/unit/optim/regularizer/seed values than ``system_kwargs``; return its ``global_step``. Read with
    ``weights_only=True`` (``evaluate.load_checkpoint``: one line for a missing, unreadable or foreign
    file)."""
    from nalu_suite.evaluate import load_checkpoint

    info = load_checkpoint(path)
    trained, task_name = info["hyper_parameters"]["task"].get("name"), system_kwargs["task"].get("name")
    if trained != task_name:
        raise ConfigError(
            f"ckpt_path={path} is a checkpoint of task {trained!r}, not {task_name!r}; "
            f"resume it with task={trained}"
        )
    differences = config_differences(info["hyper_parameters"], system_kwargs)
    if differences:
        raise ConfigError(
            f"ckpt_path={path} was trained with another config: {'; '.join(differences)}; "
            "resume with the checkpoint's values or train in a new run directory"
        )
    return int(info.get("global_step", 0))


def resume_from(loggers: list, global_step: int) -> None:
    """Tell the loggers that keep their history across a resume where the checkpoint is."""
    for logger in loggers:
        if isinstance(logger, ResumableCSVLogger):
            logger.resume_from(global_step)
