"""Compose the project's Hydra config outside ``@hydra.main`` (preview, eval, tests, the table runner).

Importing this module registers the config's resolvers (``nalu_suite.recipes``), which every entry
point needs before Hydra composes anything.
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from nalu_suite import recipes
from nalu_suite.resources import conf_dir  # noqa: F401 - re-exported for the entry points


def eval_dir(output_dir: str | None, ckpt_path: str) -> str:
    """Resolver ``nalu.eval_dir``: ``output_dir``, else ``<the checkpoint's run dir>/eval/<date>_<time>``."""
    if output_dir:
        return str(output_dir)
    return str(Path(ckpt_path).resolve().parents[1] / "eval" / time.strftime("%Y-%m-%d_%H-%M-%S"))


recipes.register()
OmegaConf.register_new_resolver("nalu.eval_dir", eval_dir, replace=True)


def compose(
    overrides: list[str] | None = None, config_name: str = "train", config_dir: Path | None = None
) -> DictConfig:
    """The config ``nalu-train OVERRIDES`` would run with (without its ``hydra`` node)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir or conf_dir()), version_base="1.3"):
        cfg = hydra_compose(config_name=config_name, overrides=list(overrides or []))
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg
