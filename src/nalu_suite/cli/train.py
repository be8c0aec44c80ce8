"""``nalu-train`` (``python train.py`` in a checkout): train one configuration, or a Hydra multirun.

    nalu-train task=static_arith task.op=mul              # one run, the op's recipe (unit=auto)
    nalu-train task=static_arith task.op=mul --cfg job    # print the config that trains (resolved)
    nalu-train -m task=static_arith task.op=add,sub seed=0,1,2

Config mistakes end with one line naming the value and the valid choices (exit 2); a diverging run ends
with one line naming the step and the last good checkpoint (exit 3), or inside a sweep records the job as
a failure and goes on. Ctrl-C ends with one line holding the command that resumes the run (exit 130).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from nalu_suite.config import conf_dir
from nalu_suite.divergence import DivergenceError
from nalu_suite.errors import ConfigError
from nalu_suite.results import success_name
from nalu_suite.runtime import resolver_message, to_plain, uses_replicas
from nalu_suite.tasks import build_task
from nalu_suite.train import train

log = logging.getLogger("nalu_suite")


def objective(cfg: DictConfig, results: dict[str, Any]) -> float | None:
    """The value a Hydra sweeper optimises (``optimized_metric``), or None."""
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in results:
        raise ConfigError(
            f"optimized_metric={name!r} is not a metric of this run; have: {', '.join(results)}"
        )
    return results[name]


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def record_divergence(cfg: DictConfig, err: Exception) -> None:
    """A diverged sweep job still leaves a results.json (success 0, ``diverged`` 1), so the sweep goes on
    and ``nalu-report`` counts the job as a failure instead of silently dropping it."""
    task = build_task(to_plain(cfg.task), to_plain(cfg.unit), int(cfg.seed))
    results: dict[str, Any] = {"diverged": 1.0, "error": str(err)}
    if task.success_metric:
        results[success_name(task.success_metric)] = 0.0
    (Path(cfg.paths.output_dir) / "results.json").write_text(json.dumps(results, indent=2) + "\n")


def save_resolved_config(cfg: DictConfig) -> None:
    """Rewrite the run's ``.hydra/config.yaml`` resolved: the op's recipe and unit as they train
    (``nalu-report`` groups jobs by these values)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hydra = HydraConfig.get()
    if hydra.output_subdir:
        OmegaConf.save(
            cfg, Path(hydra.runtime.output_dir) / hydra.output_subdir / "config.yaml", resolve=True
        )


def resume_command(cfg: DictConfig, run_dir: Path) -> str:
    """The command line that continues this run: its overrides, ``ckpt_path=last`` and its directory."""
    import shlex

    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    kept = [o for o in overrides if not o.lstrip("+~").startswith(("ckpt_path=", "hydra.run.dir="))]
    program = sys.argv[0]
    command = ["python", program] if program.endswith(".py") else [Path(program).name]
    return shlex.join([*command, *kept, "ckpt_path=last", f"hydra.run.dir={run_dir}"])


def interrupted_message(cfg: DictConfig) -> str:
    """One line for Ctrl-C: how to resume (or why this run cannot)."""
    run_dir = Path(cfg.paths.output_dir).resolve()
    if uses_replicas(cfg):
        return f"interrupted; replicas runs do not resume (run directory {run_dir})"
    if not (run_dir / "checkpoints" / "last.ckpt").is_file():
        return f"interrupted before the first checkpoint; nothing to resume in {run_dir}"
    return f"interrupted; resume with: {resume_command(cfg, run_dir)}"


def run(cfg: DictConfig) -> float | None:
    """Hydra task function: train ``cfg`` and return the sweep objective."""
    try:
        save_resolved_config(cfg)
        results = train(cfg)
        return objective(cfg, results)
    except (ConfigError, OmegaConfBaseException) as err:
        print(f"config error: {resolver_message(err)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(interrupted_message(cfg), file=sys.stderr)
        sys.exit(130)
    except DivergenceError as err:
        print(f"training diverged: {err}", file=sys.stderr)
        if not in_multirun():
            sys.exit(3)
        record_divergence(cfg, err)
        return float("nan")
    finally:
        if "wandb" in sys.modules:
            import wandb

            if wandb.run is not None:
                wandb.finish()


def main() -> None:
    """Console script: Hydra's command line over the package's configs; ``--cfg`` prints them resolved.
    Hydra's own config errors (an unknown option, key or run directory) are one line, exit 2."""
    from nalu_suite.cli.hydra_app import run_hydra_app

    if (
        any(arg in ("--cfg", "-c") or arg.startswith("--cfg=") for arg in sys.argv)
        and "--resolve" not in sys.argv
    ):
        sys.argv.append("--resolve")
    run_hydra_app(str(conf_dir()), "train", run)


if __name__ == "__main__":
    main()
