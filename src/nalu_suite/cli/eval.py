"""``nalu-eval`` (``python eval.py`` in a checkout): test a checkpoint, optionally with changed task values.

    nalu-eval ckpt_path=logs/recurrent_arith/runs/<run>/checkpoints/best.ckpt task.extrap_length=2000
    nalu-eval ckpt_path=PATH output_dir=DIR trainer.accelerator=gpu

A Hydra app over ``conf/eval.yaml`` (``--help``, ``--cfg job``, ``-m`` work as for ``nalu-train``).
``task.*`` values replace the checkpoint's. A missing or unreadable checkpoint ends with one line
``error: ...`` (exit 2).
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig

from nalu_suite.config import conf_dir
from nalu_suite.errors import ConfigError
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
    try:
        evaluate(str(cfg.ckpt_path), overrides, str(cfg.paths.output_dir))
    except (ConfigError, HydraException) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


def task_values_as_additions(argv: list[str]) -> list[str]:
    """``task.KEY=V`` -> ``++task.KEY=V``: conf/eval.yaml has no task node (the checkpoint has the task)."""
    return [f"++{arg}" if arg.startswith("task.") else arg for arg in argv]


def main() -> None:
    import hydra

    args = sys.argv[1:]
    asks_help = any(a in ("-h", "--help", "--hydra-help", "--cfg", "-c", "--info") for a in args)
    if not asks_help and not any(a.startswith("ckpt_path=") for a in args):
        print(
            "error: ckpt_path=PATH is required (nalu-eval ckpt_path=<run dir>/checkpoints/best.ckpt)",
            file=sys.stderr,
        )
        sys.exit(2)
    sys.argv[1:] = task_values_as_additions(args)
    hydra.main(config_path=str(conf_dir()), config_name="eval", version_base="1.3")(run)()


if __name__ == "__main__":
    main()
