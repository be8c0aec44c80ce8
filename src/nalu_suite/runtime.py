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

from nalu_suite.errors import ConfigError, check_int, check_number, check_positive_int
from nalu_suite.optim import check_optim
from nalu_suite.recipes import check_auto
from nalu_suite.reinit import check_reinit
from nalu_suite.schedule import check_regularizer_steps
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
    try:  # resolving runs unit=auto and the op's recipe
        plain = {key: to_plain(cfg.get(key)) for key in ("task", "unit", "optim", "regularizer", "trainer")}
        check_auto(cfg)
    except InterpolationResolutionError as err:
        raise ConfigError(resolver_message(err)) from err
    check_optim(plain["optim"])
    check_run_values(cfg)
    check_trainer(cfg)
    check_regularizer(plain["regularizer"])
    for key in EVAL_SIZE_KEYS:
        if key in plain["task"]:
            check_positive_int(f"task.{key}", plain["task"][key])
    task = build_task(plain["task"], plain["unit"], int(cfg.seed))
    check_reinit(to_plain(cfg.get("reinit")), task, plain["trainer"].get("strategy"))
    return task


def uses_replicas(cfg: DictConfig) -> bool:
    """Whether ``cfg`` trains on the replica engine (``replicas=R > 1``, or forced for one seed)."""
    return str(cfg.get("replicas", 1)) != "1" or bool(cfg.get("replicas_engine"))


#: the seeds numpy (and so Lightning's ``seed_everything``) accepts
MAX_SEED = 2**32 - 1
#: the tasks' evaluation set sizes: an empty evaluation set leaves a run with no validation metric
EVAL_SIZE_KEYS = ("eval_size", "extrap_eval_size")


def check_run_values(cfg: DictConfig) -> None:
    """The top-level values every run uses: ``seed``, ``batch_size``, ``replicas``, ``threads``."""
    seed = check_int("seed", cfg.get("seed", 0), 0, MAX_SEED)
    check_positive_int("batch_size", cfg.get("batch_size", 1))
    replicas = check_positive_int("replicas", cfg.get("replicas", 1))
    if seed + replicas - 1 > MAX_SEED:
        raise ConfigError(f"seed={seed} with replicas={replicas}: the seeds must stay <= {MAX_SEED}")
    threads = cfg.get("threads")
    if threads is not None:
        check_positive_int("threads (null: torch's default)", threads)


def check_trainer(cfg: DictConfig) -> None:
    """The trainer values that otherwise fail inside Lightning (a traceback, or one per DDP process), or
    never validate: ``max_steps``, ``val_check_interval``, the accelerator and the process count."""
    trainer = to_plain(cfg.trainer)
    max_steps = trainer.get("max_steps", -1)
    if max_steps != -1:
        check_positive_int("trainer.max_steps (-1: no step limit)", max_steps)
    every = trainer.get("val_check_interval")
    if isinstance(every, float) and not isinstance(every, bool) and 0 < every <= 1:
        pass  # a fraction of an epoch
    elif every is not None:
        check_positive_int("trainer.val_check_interval (steps, or a fraction of an epoch in (0, 1])", every)
        if max_steps != -1 and trainer.get("check_val_every_n_epoch") is None and every > max_steps:
            raise ConfigError(
                f"trainer.val_check_interval={every} is more than trainer.max_steps={max_steps}: the run "
                f"would never validate (no best checkpoint, no validation metrics); "
                f"set trainer.val_check_interval to at most {max_steps}"
            )
    check_devices(trainer, int(cfg.get("batch_size", 1)))


def check_devices(trainer: dict[str, Any], batch_size: int) -> None:
    """A GPU accelerator needs a GPU; DDP's processes must split the global batch evenly (checked here,
    before Lightning starts the processes, each of which would fail with a traceback)."""
    import torch

    accelerator = str(trainer.get("accelerator") or "auto")
    devices = trainer.get("devices", "auto")
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={accelerator} but this machine has no CUDA GPU; use trainer=cpu "
            "(one process) or trainer=ddp_cpu (several CPU processes)"
        )
    if isinstance(devices, bool) or (isinstance(devices, int) and devices != -1 and devices < 1):
        raise ConfigError(f"trainer.devices={devices!r} must be a positive integer, -1 (all) or auto")
    if "ddp" not in str(trainer.get("strategy") or ""):
        return
    if isinstance(devices, int) and devices >= 1:
        count = devices
    elif isinstance(devices, list):
        count = len(devices)
    elif (
        devices in (-1, "-1", "auto") and accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    ):
        count = torch.cuda.device_count()
    else:
        return  # Lightning decides (e.g. devices=auto on CPU)
    nodes = trainer.get("num_nodes") or 1
    processes = count * int(nodes)
    if batch_size % processes:
        over = f" x trainer.num_nodes={nodes}" if nodes != 1 else ""
        raise ConfigError(
            f"batch_size={batch_size} is not divisible by the {processes} processes "
            f"(trainer.devices={devices!r}{over}); batch_size is the global batch, split evenly across "
            f"processes: use a multiple of {processes}"
        )


def check_regularizer(reg: dict[str, Any]) -> None:
    """``regularizer.weight`` >= 0; ``start`` and ``end`` steps >= 0; the staircase's ``growth`` and
    ``every`` (``schedule.check_regularizer_steps``); ``gate`` null or a number > 0."""
    if not reg:
        return
    check_number("regularizer.weight", reg.get("weight", 0.0), 0)
    if reg.get("gate") is not None:
        check_number("regularizer.gate (null: always on)", reg["gate"], 0, above=True)
    for key in ("start", "end"):
        check_int(f"regularizer.{key}", reg.get(key, 0), 0)
    check_regularizer_steps(reg)


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
    from nalu_suite.evaluate import check_checkpoint_file

    check_checkpoint_file(ckpt_path, example="last.ckpt")
    return str(ckpt_path)  # its contents are checked before training (checkpointing.check_resume)


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
