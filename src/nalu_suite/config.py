"""Compose the project's Hydra config outside ``@hydra.main`` (preview, eval, tests)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose(
    overrides: list[str] | None = None, config_name: str = "train", conf_dir: Path | None = None
) -> DictConfig:
    """The config ``python train.py OVERRIDES`` would run with (``hydra.*`` values not resolved)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir or CONF_DIR), version_base="1.3"):
        return hydra_compose(
            config_name=config_name, overrides=list(overrides or []), return_hydra_config=False
        )
