"""What every run does before and around training, for both engines (Lightning and replicas).

``validate`` checks the whole config before anything expensive happens; ``configure_torch`` applies the
process-wide torch settings; ``resolve_checkpoint`` finds the checkpoint to resume from;
``build_loggers`` instantiates the configured Lightning loggers (``logger=csv|tensorboard|wandb``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from nalu_suite.errors import ConfigError
from nalu_suite.optim import check_optim
from nalu_suite.recipes import check_auto
from nalu_suite.tasks import build_task


def to_plain(cfg: DictConfig | dict | None) -> dict[str, Any]:
    """A config node as plain, resolved Python values (what tasks and checkpoints take)."""
    if cfg is None:
        return {}
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def validate(cfg: DictConfig):
    """Check the whole config before anything expensive happens; return the task object."""
    for key in ("task", "unit", "optim", "trainer"):
        if cfg.get(key) is None:
            raise ConfigError(f"config has no '{key}' section; pick one with {key}=<name>")
    try:
        for key in ("task", "unit", "optim", "regularizer", "trainer"):  # unit=auto and the op's recipe
            to_plain(cfg.get(key))
        check_auto(cfg)
    except InterpolationResolutionError as err:
        raise ConfigError(resolver_message(err)) from err
    check_optim(to_plain(cfg.optim))
    if int(cfg.get("batch_size", 1)) < 1:
        raise ConfigError(f"batch_size={cfg.batch_size} must be >= 1")
    return build_task(to_plain(cfg.task), to_plain(cfg.unit), int(cfg.seed))


def resolver_message(err: Exception) -> str:
    """The one line of a resolver's error that OmegaConf wrapped (``... raised while resolving ...: MSG``)."""
    line = str(err).splitlines()[0] if str(err) else type(err).__name__
    return line.split("raised while resolving interpolation: ", 1)[-1]


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


def resolve_checkpoint(ckpt_path: str | None, run_dir: Path) -> str | None:
    """The checkpoint to resume from: ``None``, a file that exists, or ``last`` (this run's ``last.ckpt``)."""
    if ckpt_path in (None, "", "null"):
        return None
    if ckpt_path == "last":
        last = Path(run_dir) / "checkpoints" / "last.ckpt"
        if not last.exists():
            raise ConfigError(f"ckpt_path=last but {last} does not exist; nothing to resume")
        return str(last)
    if not Path(ckpt_path).exists():
        raise ConfigError(f"ckpt_path={ckpt_path!r}: no such file")
    return ckpt_path


#: the extra that installs each optional logger's package
LOGGER_EXTRAS = {"tensorboard": ("tensorboard", "tensorboardX")}


def build_loggers(cfg: DictConfig) -> list:
    """The Lightning loggers that ``cfg.logger`` configures (``_target_`` entries); a missing optional
    package is a ``ConfigError`` naming the extra that installs it."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    loggers = cfg.get("logger") or {}
    if "_target_" in loggers:
        loggers = {"main": loggers}
    built = []
    for name, conf in loggers.items():
        if not conf or "_target_" not in conf:
            continue
        try:
            built.append(instantiate(conf))
        except (ImportError, ModuleNotFoundError, InstantiationException) as err:
            if "tensorboard" in str(err).lower():
                raise ConfigError(
                    f"logger={name} needs the tensorboard package: pip install 'nalu-suite[tensorboard]'"
                ) from err
            raise
    return built
