"""``unit=auto`` and per-op recipes, resolved while the config is composed (OmegaConf resolvers).

A task config that has the best unit and settings per op writes them as a table and reads them
through two resolvers, so the composed config is exactly what trains (``--cfg job`` shows it, a
checkpoint stores it) and anything set later wins as usual (the command line, ``debug=``, ``local``):

* ``${nalu.auto_unit:FIELD}``: under ``unit=auto`` (``conf/unit/auto.yaml``), FIELD (``name``,
  ``first``, ``second``, ``first_options``, ``second_options``) of the unit config that
  ``task.best_units[task.op]`` names (``conf/unit/<name>.yaml``).
* ``${nalu.recipe:KEY,DEFAULT}``: under ``unit=auto``, ``task.recipes[task.op][KEY]`` where the op's
  recipe sets KEY, else DEFAULT (the shared recipe). With a named unit (``unit=nmu``) always DEFAULT.
"""

from __future__ import annotations

import functools
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nalu_suite.errors import ConfigError, check_choice
from nalu_suite.resources import conf_dir

UNIT_FIELDS = ("name", "first", "second", "first_options", "second_options")


@functools.cache
def unit_config(name: str) -> dict[str, Any]:
    """``conf/unit/<name>.yaml`` as a plain dict, read once per process."""
    path = conf_dir() / "unit" / f"{name}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in path.parent.glob("*.yaml") if p.stem != "auto")
        raise ConfigError(f"unit config {name!r} does not exist; choose one of: {', '.join(names)}")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)  # type: ignore[return-value]


def is_auto(root: DictConfig) -> bool:
    """Whether the config's unit is ``unit=auto`` (its config carries ``auto: true``)."""
    unit = root.get("unit")
    return bool(unit is not None and unit.get("auto", False))


def best_unit_name(root: DictConfig) -> str:
    """The unit config that ``task.best_units`` names for ``task.op``."""
    task = root.get("task")
    op = task.get("op") if task is not None else None
    names = (task.get("best_units") if task is not None else None) or {}
    name = names.get(op) if op is not None else None
    task_name = task.get("name") if task is not None else None
    if not names:
        raise ConfigError(f"unit=auto: task {task_name!r} picks no unit itself; name one with unit=<name>")
    if name is None:  # an op the task cannot train under unit=auto
        check_choice("task.op", op, list(names))
    return str(name)


def auto_unit(field: str, *, _root_: DictConfig) -> Any:
    """Resolver ``nalu.auto_unit``: a field of the op's best unit config."""
    if field not in UNIT_FIELDS:
        raise ConfigError(
            f"nalu.auto_unit:{field}: not a unit field; choose one of: {', '.join(UNIT_FIELDS)}"
        )
    value = unit_config(best_unit_name(_root_)).get(field)
    if field.endswith("_options"):
        return OmegaConf.create(value or {})  # a node, so that OmegaConf.resolve can put it in place
    return value


def recipe(key: str, default: Any = None, *, _root_: DictConfig) -> Any:
    """Resolver ``nalu.recipe``: the op's recipe value for ``key`` under ``unit=auto``, else ``default``.
    A list or mapping (e.g. ``task.curriculum``, default ``[]``) comes back as a node, as resolvers must
    return them."""
    value = default
    if is_auto(_root_):
        task = _root_.task
        value = ((task.get("recipes") or {}).get(task.get("op")) or {}).get(key, default)
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    return OmegaConf.create(value) if isinstance(value, (list, dict)) else value


def check_auto(root: DictConfig) -> None:
    """Under ``unit=auto`` the layers are the picked unit's: a layer changed on the command line is an error
    (name the unit config instead). Options may be set; they replace the picked unit's."""
    if not is_auto(root):
        return
    picked = unit_config(best_unit_name(root))
    for layer in ("first", "second"):
        value = root.unit.get(layer)
        if value != picked.get(layer):
            raise ConfigError(
                f"unit.{layer}={value!r} with unit=auto: name a unit config to change its layers, "
                f"e.g. unit={picked.get('name')} unit.{layer}={value}"
            )


def recipe_keys(task_cfg: dict[str, Any]) -> set[str]:
    """Every key any op's recipe of ``task_cfg`` sets (``task.recipes.<op>.<key>``)."""
    return {key for op_recipe in (task_cfg.get("recipes") or {}).values() for key in (op_recipe or {})}


def register() -> None:
    """Register the resolvers (idempotent); ``nalu_suite.config`` does it on import."""
    OmegaConf.register_new_resolver("nalu.auto_unit", auto_unit, replace=True)
    OmegaConf.register_new_resolver("nalu.recipe", recipe, replace=True)
