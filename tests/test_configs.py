"""Every shipped config composes and validates; config mistakes stop early with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from nalu_suite.errors import ConfigError
from nalu_suite.runtime import validate

CONF = Path(__file__).resolve().parents[1] / "conf"
TASKS = sorted(p.stem for p in (CONF / "task").glob("*.yaml"))
UNITS = sorted(p.stem for p in (CONF / "unit").glob("*.yaml"))
CLASSIC = {"lstm", "gru", "rnn_tanh", "rnn_relu"}


@pytest.mark.parametrize("task", TASKS)
def test_every_task_config_composes_and_validates(make_cfg, task):
    cfg = make_cfg(f"task={task}")
    assert cfg.task.name == task
    assert validate(cfg).name == task


@pytest.mark.parametrize("unit", sorted(set(UNITS) - CLASSIC))
def test_every_unit_config_builds_the_static_model(make_cfg, unit):
    import torch

    cfg = make_cfg("task=static_arith", f"unit={unit}")
    model = validate(cfg).build_model()
    assert model(torch.rand(3, 100) + 1).shape == (3, 1)


@pytest.mark.parametrize("unit", sorted(CLASSIC))
def test_classic_cells_are_recurrent_task_cores(make_cfg, unit):
    cfg = make_cfg("task=recurrent_arith", f"unit={unit}")
    assert validate(cfg).build_model().cell.hidden_size == cfg.task.rnn_hidden_size


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["unit=nau", "unit.first=nacc"], "unit.first='nacc' is not valid; choose one of: "),
        (["unit.first=nac"], "unit.first='nac' with unit=auto: name a unit config to change its layers"),
        (["task.op=pow"], "task.op='pow' is not valid; choose one of: add, sub, mul, div, square, sqrt"),
        (["optim.name=adamax"], "optim.name='adamax' is not valid; choose one of: adam, adamw, sgd, rmsprop"),
        (["task.extrap_range=[6,2]"], "task.extrap_range=[6.0, 2.0] is empty"),
        (["task.hidden_size=0"], "task.hidden_size=0 must be >= 1"),
    ],
)
def test_config_mistakes_name_the_value_and_the_choices(make_cfg, overrides, message):
    with pytest.raises(ConfigError) as info:
        validate(make_cfg("task=static_arith", *overrides))
    assert message in str(info.value)


def test_train_cli_reports_a_bad_value_in_one_line_before_training(run_script, tmp_path):
    result = run_script(
        "train.py", "task=static_arith", "task.op=pow", f"hydra.run.dir={tmp_path}", timeout=120
    )
    assert result.returncode == 2
    assert "config error: task.op='pow' is not valid; choose one of: add, sub" in result.stderr
    assert not (tmp_path / "checkpoints").exists()  # nothing was trained


def test_unknown_task_lists_the_available_tasks(run_script, tmp_path):
    result = run_script("train.py", "task=nope", f"hydra.run.dir={tmp_path}", timeout=120)
    assert result.returncode != 0
    assert "static_arith" in result.stderr and "nope" in result.stderr


@pytest.mark.parametrize(
    ("op", "first", "second"),
    [("add", "NAU", "NAU"), ("mul", "NAU", "NMU"), ("sqrt", "NAU", "RealNPU"), ("div", "NAU", "RealNPU")],
)
def test_static_arith_defaults_to_the_best_unit_of_its_op(make_cfg, op, first, second):
    cfg = make_cfg("task=static_arith", f"task.op={op}")
    assert cfg.unit.auto is True
    model = validate(cfg).build_model()
    assert (type(model.first).__name__, type(model.second).__name__) == (first, second)


def test_unit_auto_names_a_missing_op_and_a_task_without_its_own_units(make_cfg):
    cfg = make_cfg("task=static_arith", "task.op=mul", "~task.best_units.mul")
    message = r"^task.op='mul' is not valid; choose one of: add, sub, div, square, sqrt$"
    with pytest.raises(ConfigError, match=message):
        validate(cfg)
    cfg = make_cfg("task=mnist_add", "unit=auto")
    with pytest.raises(ConfigError, match=r"^unit=auto: task 'mnist_add' picks no unit itself"):
        validate(cfg)


def test_unit_auto_is_resolved_in_the_config_to_the_ops_pair(make_cfg):
    from nalu_suite.runtime import to_plain

    for op, pair in (("add", ("nau", "nau")), ("mul", ("nau", "nmu")), ("sqrt", ("nau", "realnpu"))):
        unit = to_plain(make_cfg("task=static_arith", f"task.op={op}").unit)
        assert (unit["first"], unit["second"]) == pair and unit["auto"] is True
    power = to_plain(make_cfg("task=static_arith", "task.op=sqrt").unit)
    assert power["name"] == "power" and power["second_options"] == {"gated": False, "signed": False}
    add = make_cfg("task=static_arith", "task.op=add")  # the sparse add recipe: split init, plain Adam
    assert to_plain(add.unit)["first_options"] == {"init": "split"} and add.optim.whiten_from is None
    assert validate(add).build_model().first.init == "split"
    sub = make_cfg("task=static_arith", "task.op=sub")  # one hidden unit: a - b is sparse by the clamp
    assert sub.task.hidden_size == 1 and sub.optim.final_lr_factor == 1e-6


def test_unit_auto_applies_the_ops_recipe_where_the_command_line_is_silent(make_cfg):
    from omegaconf import OmegaConf

    from nalu_suite.recipes import recipe_keys
    from nalu_suite.runtime import to_plain

    shared = make_cfg("task=static_arith", "task.op=div")
    assert "div" not in shared.task.recipes, "the test needs an op without its own recipe"
    recipe = OmegaConf.to_container(shared.task.recipes.sqrt)
    assert recipe, "the test needs an op with its own recipe"
    cfg = make_cfg("task=static_arith", "task.op=sqrt")
    for key, value in recipe.items():
        assert OmegaConf.select(cfg, key) == value
        assert OmegaConf.select(shared, key) != value  # div keeps the shared recipe
    key, value = next(iter(recipe.items()))
    mine = 0.123 if not isinstance(value, bool) else not value
    cfg = make_cfg("task=static_arith", "task.op=sqrt", f"{key}={mine}")
    assert OmegaConf.select(cfg, key) == mine  # the command line wins
    fast = make_cfg("task=static_arith", "task.op=sqrt", "debug=fast")  # a preset beats the recipe too
    assert fast.trainer.max_steps == 20 and fast.task.hidden_size == recipe["task.hidden_size"]
    other = make_cfg("task=static_arith", "task.op=sqrt", "unit=realnpu")  # a named unit: shared recipe
    assert all(OmegaConf.select(other, k) == OmegaConf.select(shared, k) for k in recipe)
    # every key any recipe sets is read through ${nalu.recipe:KEY,...} in the task config: otherwise
    # the recipe would be ignored without a word
    raw = OmegaConf.to_container(shared, resolve=False)
    for key in recipe_keys(to_plain(shared.task)):
        node = raw
        for part in key.split("."):
            node = node[part]
        assert node.startswith(f"${{nalu.recipe:{key},"), f"{key} is not read through nalu.recipe"


def test_cfg_job_prints_the_config_that_trains(run_script):
    import yaml

    result = run_script("train.py", "task=static_arith", "task.op=mul", "--cfg", "job", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = yaml.safe_load(result.stdout)
    assert printed["trainer"]["max_steps"] == 40000
    assert (printed["unit"]["first"], printed["unit"]["second"]) == ("nau", "nmu")
    assert printed["regularizer"]["start"] == 20000


def test_train_cli_applies_the_recipe_and_saves_the_config_it_trained(run_script, tmp_path):
    import yaml

    result = run_script(
        "train.py",
        "task=static_arith",
        "task.op=sqrt",
        "trainer.max_steps=2",
        "task.eval_size=8",
        "trainer.val_check_interval=1",
        "task.baseline_draws=1",
        "callbacks.progress_bar=null",
        "logger=none",
        "optim.lr=0.005",
        f"hydra.run.dir={tmp_path}",
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    saved = yaml.safe_load((tmp_path / ".hydra" / "config.yaml").read_text())
    recipe = saved["task"]["recipes"]["sqrt"]
    assert saved["task"]["hidden_size"] == recipe["task.hidden_size"]
    assert saved["optim"]["lr"] == 0.005  # given on the command line
    assert saved["unit"]["second"] == "realnpu"
