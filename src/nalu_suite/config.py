"""Compose the project's Hydra config outside ``@hydra.main`` (preview, eval, tests)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose(
    overrides: list[str] | None = None, config_name: str = "train", conf_dir: Path | None = None
) -> DictConfig:
    """The config ``python train.py OVERRIDES`` would run with (``hydra.*`` values not resolved),
    including the op's own recipe under ``unit=auto`` (``tasks.static_arith.apply_recipe``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir or CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(
            config_name=config_name, overrides=list(overrides or []), return_hydra_config=False
        )
    from nalu_suite.tasks.static_arith import apply_recipe

    apply_recipe(cfg, override_keys(overrides or []))
    return cfg


def override_keys(overrides: list[str], conf_dir: Path | None = None) -> set[str]:
    """The config values that command-line overrides set: ``+a.b=1``, ``a.b=1,2``, ``~a.b`` -> ``a.b``.
    Choices of a config group (``task=static_arith``, ``unit=nau``) pick files, not values: left out."""
    keys = {item.split("=", 1)[0].lstrip("+~") for item in overrides}
    return {key for key in keys if not (Path(conf_dir or CONF_DIR) / key.split("@", 1)[0]).is_dir()}
