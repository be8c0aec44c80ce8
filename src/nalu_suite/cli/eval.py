"""``nalu-eval`` (``python eval.py`` in a checkout): test a checkpoint, optionally with changed task values.

    nalu-eval ckpt_path=logs/recurrent_arith/runs/<run>/checkpoints/best.ckpt task.extrap_length=2000
    nalu-eval ckpt_path=PATH output_dir=DIR trainer.accelerator=gpu

A Hydra app over ``conf/eval.yaml`` (``--help``, ``--cfg job``, ``-m`` work as for ``nalu-train``).
``task.*`` values replace the checkpoint's. A missing or unreadable checkpoint ends with one line
``error: ...`` (exit 2).
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from nalu_suite.config import conf_dir
from nalu_suite.errors import ConfigError, clip_text
from nalu_suite.evaluate import evaluate

#: keys of conf/eval.yaml itself; every other override is passed on as a ``nalu-train`` override
OWN_KEYS = ("ckpt_path", "output_dir", "hydra")


def run(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException

    overrides = [
        item.lstrip("+")
        for item in HydraConfig.get().overrides.task
        if item.lstrip("+~").split("=", 1)[0].split(".")[0] not in OWN_KEYS
    ]
    from omegaconf.errors import OmegaConfBaseException

    from nalu_suite.cli.hydra_app import one_line

    try:
        evaluate(str(cfg.ckpt_path), overrides, str(cfg.paths.output_dir))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except (HydraException, OmegaConfBaseException) as err:  # an override the config refuses
        print(f"error: {one_line(err)}", file=sys.stderr)
        sys.exit(2)


def task_values_as_additions(argv: list[str]) -> list[str]:
    """``task.KEY=V`` -> ``++task.KEY=V``: conf/eval.yaml has no task node (the checkpoint has the task)."""
    return [f"++{arg}" if arg.startswith("task.") else arg for arg in argv]


def argument_error(args: list[str]) -> str | None:
    """What is wrong with the command line before Hydra starts (and creates a run directory), or None."""
    asks_help = any(a in ("-h", "--help", "--hydra-help", "--cfg", "-c", "--info") for a in args)
    if asks_help:
        return None
    paths = [a.split("=", 1)[1] for a in args if a.startswith("ckpt_path=")]
    if not paths:
        return "ckpt_path=PATH is required (nalu-eval ckpt_path=<run dir>/checkpoints/best.ckpt)"
    for arg in args:
        if arg.lstrip("+~").startswith("task="):
            return (
                f"{arg}: nalu-eval tests the task the checkpoint was trained on; change its values with "
                "task.KEY=VALUE (e.g. task.extrap_length=2000)"
            )
    sweep = any(a in ("-m", "--multirun") for a in args) or "," in paths[-1]
    if not sweep and not Path(paths[-1]).is_file():
        return f"ckpt_path={clip_text(paths[-1])!r}: no such file"
    return None


def main() -> None:
    from nalu_suite.cli.hydra_app import run_hydra_app

    args = sys.argv[1:]
    problem = argument_error(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    sys.argv[1:] = task_values_as_additions(args)
    run_hydra_app(str(conf_dir()), "eval", run, run_dir_key="output_dir")


if __name__ == "__main__":
    main()
