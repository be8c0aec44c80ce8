"""Every shipped config composes and validates; config mistakes stop early with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from nalu_suite.errors import ConfigError
from nalu_suite.train import validate

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
    assert cfg.unit.name == "auto"
    model = validate(cfg).build_model()
    assert (type(model.first).__name__, type(model.second).__name__) == (first, second)


def test_unit_auto_keeps_options_and_names_a_missing_op(make_cfg):
    cfg = make_cfg("task=static_arith", "task.op=mul", "+unit.second_options.noise=[1,5]")
    assert validate(cfg).build_model().second.noise == (1.0, 5.0)
    cfg = make_cfg("task=static_arith", "task.op=mul", "~task.best_units.mul")
    with pytest.raises(ConfigError, match=r"task.best_units names no unit for task.op='mul'"):
        validate(cfg)
    cfg = make_cfg("task=mnist_add", "unit=auto")
    with pytest.raises(ConfigError, match=r"unit.first='auto'"):
        validate(cfg)
