"""Compose the project's Hydra config outside ``@hydra.main`` (preview, eval, tests)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, open_dict

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
            config_name=config_name, overrides=list(overrides or []), return_hydra_config=True
        )
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    from nalu_suite.tasks.static_arith import apply_recipe

    apply_recipe(cfg, protected_keys(overrides or [], choices, conf_dir))
    return cfg


#: config groups listed after ``task`` in conf/train.yaml's defaults: the values they set beat a recipe
PRESET_GROUPS = ("hparams_search", "local", "debug")


def protected_keys(overrides: list[str], choices: dict, conf_dir: Path | None = None) -> set[str]:
    """The keys a per-op recipe (``task.recipes``) must not change: those set on the command line and
    those set by the chosen presets (``debug=fast``, a ``local`` config, ``hparams_search``)."""
    from omegaconf import OmegaConf

    conf = Path(conf_dir or CONF_DIR)
    keys = override_keys(overrides, conf)
    for group in PRESET_GROUPS:
        path = conf / group / f"{choices.get(group)}.yaml"
        if choices.get(group) and path.is_file():
            keys |= _leaf_keys(OmegaConf.to_container(OmegaConf.load(path)))
    return keys


def _leaf_keys(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        if prefix == "" and key in ("defaults", "hydra"):
            continue
        if isinstance(value, dict) and value:
            keys |= _leaf_keys(value, f"{prefix}{key}.")
        else:
            keys.add(f"{prefix}{key}")
    return keys


def override_keys(overrides: list[str], conf_dir: Path | None = None) -> set[str]:
    """The config values that command-line overrides set: ``+a.b=1``, ``a.b=1,2``, ``~a.b`` -> ``a.b``.
    Choices of a config group (``task=static_arith``, ``unit=nau``) pick files, not values: left out."""
    keys = {item.split("=", 1)[0].lstrip("+~") for item in overrides}
    return {key for key in keys if not (Path(conf_dir or CONF_DIR) / key.split("@", 1)[0]).is_dir()}
