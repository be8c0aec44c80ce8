"""What the replica loop needs from the config, checked before anything is built."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from nalu_suite.errors import ConfigError, check_choice, check_positive_int
from nalu_suite.replicas.compiled import COMPILE_MODES, resolve
from nalu_suite.replicas.data import PREFETCH_MODES, default_prefetch


@dataclass(frozen=True)
class ReplicaSettings:
    """The replica loop's settings: seeds, steps, validation, clipping, device, progress, data worker,
    compilation."""

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
    compile: bool = False  # replica_compile, resolved

    @property
    def seeds(self) -> list[int]:
        return [self.seed + k for k in range(self.replicas)]


def replica_settings(cfg: DictConfig) -> ReplicaSettings:
    """Check the parts of ``cfg`` the replica loop depends on; raise ``ConfigError`` naming what is wrong."""
    import torch

    replicas = check_positive_int("replicas", cfg.get("replicas", 1))
    if cfg.get("ckpt_path") not in (None, "", "null"):
        raise ConfigError("ckpt_path: resuming is not supported with replicas; run without ckpt_path")
    trainer = cfg.trainer
    max_steps = check_positive_int("trainer.max_steps", trainer.get("max_steps"))
    val_every = check_positive_int(
        "trainer.val_check_interval (replicas validate every N steps)", trainer.get("val_check_interval")
    )
    if int(trainer.get("accumulate_grad_batches") or 1) != 1:
        raise ConfigError("trainer.accumulate_grad_batches must be 1 with replicas")
    if str(trainer.get("precision") or 32) not in ("32", "32-true"):
        raise ConfigError(f"trainer.precision={trainer.precision!r}: replicas train in float32 only (32)")
    algorithm = str(trainer.get("gradient_clip_algorithm") or "norm")
    check_choice("trainer.gradient_clip_algorithm", algorithm, ("norm", "value"))
    clip = trainer.get("gradient_clip_val")
    accelerator = str(trainer.get("accelerator") or "cpu")
    check_choice("trainer.accelerator (replicas)", accelerator, ("cpu", "gpu", "cuda", "auto"))
    want_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if want_gpu and not torch.cuda.is_available():
        raise ConfigError(f"trainer.accelerator={accelerator!r} but no CUDA device is available")
    device = "cuda" if want_gpu else "cpu"
    prefetch = str(cfg.get("replica_data") or "auto")
    check_choice("replica_data", prefetch, ("auto", *PREFETCH_MODES))
    compile_mode = str(cfg.get("replica_compile", "false")).lower()
    check_choice("replica_compile", compile_mode, COMPILE_MODES)
    return ReplicaSettings(
        replicas=replicas,
        seed=int(cfg.seed),
        batch_size=check_positive_int("batch_size", cfg.get("batch_size", 1)),
        max_steps=max_steps,
        val_check_interval=val_every,
        clip_value=float(clip) if clip not in (None, 0) else None,
        clip_algorithm=algorithm,
        device=device,
        progress_bar=bool((cfg.get("callbacks") or {}).get("progress_bar")),
        prefetch=default_prefetch(device) if prefetch == "auto" else prefetch,
        compile=resolve(compile_mode, device),
    )
