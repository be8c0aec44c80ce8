"""Evaluate a checkpoint on its task's test splits, optionally with changed task values.

``evaluate(ckpt_path, overrides, output_dir)`` is what ``nalu-eval`` (``nalu_suite.cli.eval``) runs:
``overrides`` are ``nalu-train`` overrides (``task.*`` values replace the checkpoint's; the task itself
is the checkpoint's). The checkpoint is read with ``torch.load(weights_only=True)``: no code in it is
unpickled. Writes ``results.json`` and the task's figures.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nalu_suite.errors import ConfigError, check_positive_int
from nalu_suite.results import add_success, print_results, write_results

CHECKPOINT_KEYS = ("hyper_parameters", "state_dict")


def check_checkpoint_file(path: str | Path, example: str = "best.ckpt") -> Path:
    """``path`` if it is a file; else a one-line ``ConfigError`` (a directory gets the file to give)."""
    path = Path(str(path))
    if path.is_dir():
        raise ConfigError(
            f"ckpt_path={str(path)!r} is a directory; give a checkpoint file "
            f"(e.g. {path}/checkpoints/{example})"
        )
    if not path.is_file():
        raise ConfigError(f"ckpt_path={str(path)!r}: no such file")
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A nalu-suite checkpoint's plain contents; a clear error for a missing or foreign file."""
    import torch

    path = check_checkpoint_file(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same one-line error
        raise ConfigError(f"{path} is not a readable PyTorch checkpoint ({type(err).__name__})") from err
    if (
        not isinstance(raw, dict)
        or any(k not in raw for k in CHECKPOINT_KEYS)
        or "task" not in raw.get("hyper_parameters", {})
    ):
        raise ConfigError(f"{path} is not a nalu-suite checkpoint (no task hyper-parameters in it)")
    return raw


def model_from_checkpoint(raw: dict[str, Any]):
    """``(task, model)`` rebuilt from a checkpoint's hyper-parameters, with its weights, in eval mode
    (no Lightning: the system's ``model.`` weights are loaded into the task's model)."""
    from nalu_suite.tasks import build_task

    hp = raw["hyper_parameters"]
    task = build_task(hp["task"], hp.get("unit", {}), int(hp.get("seed", 0)))
    model = task.build_model()
    prefix = "model."
    model.load_state_dict({k[len(prefix) :]: v for k, v in raw["state_dict"].items() if k.startswith(prefix)})
    return task, model.eval()


def task_overrides(overrides: list[str], composed_task: dict) -> dict[str, Any]:
    """The ``task.<key>`` values the user changed, read back from the composed (type-checked) config."""
    keys = {
        o.split("=", 1)[0].lstrip("+~").removeprefix("task.").split(".")[0]
        for o in overrides
        if o.lstrip("+~").startswith("task.")
    }
    return {k: composed_task[k] for k in keys}


def check_same_task(overrides: list[str], trained: str | None) -> None:
    """``task=OTHER`` cannot change the checkpoint's task (its model and weights are that task's)."""
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key == "task" and value != trained:
            raise ConfigError(
                f"task={value} but the checkpoint is of task {trained!r}; nalu-eval tests the checkpoint's "
                "own task (change its values with task.KEY=VALUE)"
            )


def load_weights(system, state_dict: dict[str, Any], changed: dict[str, Any]) -> None:
    """Load the checkpoint's weights; a changed task value that changes the model's shape (e.g.
    ``task.hidden_size``) is a ``ConfigError`` naming it and the first mismatching weight."""
    try:
        system.load_state_dict(state_dict)
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines()]
        first = next(
            (line for line in lines if line.startswith(("size mismatch", "Missing", "Unexpected"))), lines[0]
        )
        values = ", ".join(f"task.{k}={v!r}" for k, v in changed.items()) or "the checkpoint's task values"
        raise ConfigError(
            f"{values} does not fit the checkpoint's model ({first}); only values that keep the model's "
            "shape (ranges, lengths, sizes of the test sets) can change"
        ) from None


def evaluate(ckpt_path: str, overrides: list[str], output_dir: str | None = None) -> dict[str, float]:
    """Test the checkpoint; write ``results.json`` into ``output_dir``; return the metrics."""
    from omegaconf import OmegaConf

    from nalu_suite.config import compose
    from nalu_suite.tasks import build_task

    started = time.time()
    raw = load_checkpoint(ckpt_path)
    hp = raw["hyper_parameters"]
    check_same_task(overrides, hp["task"].get("name"))
    cfg = compose([f"task={hp['task']['name']}", *overrides])
    task_cfg = dict(hp["task"]) | task_overrides(overrides, OmegaConf.to_container(cfg.task, resolve=True))
    task = build_task(task_cfg, hp["unit"], int(hp["seed"]))  # validates the changed values before any work
    check_positive_int("batch_size", cfg.get("batch_size", 1))

    import lightning as L

    from nalu_suite.system import system_class_for

    system = system_class_for(task)(**(dict(hp) | {"task": task_cfg}))
    load_weights(system, raw["state_dict"], task_overrides(overrides, task_cfg))
    run_dir = (
        Path(output_dir)
        if output_dir
        else Path(ckpt_path).resolve().parents[1] / "eval" / time.strftime("%Y-%m-%d_%H-%M-%S")
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = L.Trainer(
        accelerator=cfg.trainer.accelerator,
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(run_dir),
    )
    trainer.test(
        system,
        datamodule=system.task.build_datamodule(cfg.paths.data_dir, int(cfg.batch_size)),
        verbose=False,
    )
    results = {name: float(value) for name, value in trainer.callback_metrics.items()}
    add_success(results, system.task)
    results["sparsity_error"] = float(system.model.sparsity_error())
    results["checkpoint_step"] = float(raw.get("global_step", -1))
    results["wall_time_s"] = round(time.time() - started, 2)
    results = dict(sorted(results.items()))
    system.task.make_figures(system.model, run_dir)
    write_results(results, run_dir)
    print_results(results, f"eval of {ckpt_path}")
    return results
