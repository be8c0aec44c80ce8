"""The recurrent task's length-extrapolation metrics and thresholds, its per-op recipes, and Table 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nalu_suite.config import compose
from nalu_suite.errors import ConfigError
from nalu_suite.tasks.arithmetic import SUCCESS_EPS
from nalu_suite.tasks.recurrent_arith import RecurrentArithTask, recurrent_eps_threshold

TASK = {
    "name": "recurrent_arith",
    "op": "add",
    "input_size": 10,
    "hidden_size": 2,
    "rnn_hidden_size": 4,
    "subset_ratio": 0.25,
    "overlap_ratio": 0.5,
    "train_length": 10,
    "extrap_length": 60,
    "test_lengths": [30],
    "interp_range": [1, 2],
    "extrap_range": [1, 2],
    "eval_size": 200,
    "extrap_eval_size": 40,
    "baseline_draws": 2,
}
NAU = {"name": "nau", "first": "nau", "second": "nau"}


def accumulator(task: RecurrentArithTask, in_weight: float = 1.0, off: float = 0.0, diagonal: float = 1.0):
    """The NAU cell -> NAU model set to ``h_t = W x_t + diagonal * h_{t-1}``, ``W`` = ``in_weight`` on the
    slices and ``off`` elsewhere; the output adds the two state units."""
    model = task.build_model().double()
    a, b = task.subsets.masks(task.input_size, torch.float64)
    n = task.input_size
    with torch.no_grad():
        w = torch.zeros(2, n + 2, dtype=torch.float64)
        w[0, :n] = a * in_weight + (1 - a) * off
        w[1, :n] = b * in_weight + (1 - b) * off
        w[:, n:] = diagonal * torch.eye(2, dtype=torch.float64)
        model.cell.unit.W.copy_(w)
        model.second.W.fill_(1.0)
    return model


def mse(model, task, split: str) -> float:
    x, y = task.fixed_set(split)
    with torch.no_grad():
        return float((model(x.double()) - y.double()).pow(2).mean())


def test_each_test_length_has_its_split_set_and_threshold():
    task = RecurrentArithTask(TASK, NAU, seed=3)
    assert task.test_splits == ("test/interp", "test/len30", "test/extrap")
    assert task.fixed_set("test/interp")[0].shape == (200, 10, 10)
    assert task.fixed_set("test/len30")[0].shape == (40, 30, 10)
    assert task.fixed_set("test/extrap")[0].shape == (40, 60, 10)
    assert torch.equal(task.fixed_set("val_extrap")[0], task.fixed_set("test/extrap")[0])  # one set
    # the error of a perturbed accumulator grows with the length, and so does the threshold
    assert 0 < task.threshold_at("test/len30") < task.threshold_at("test/extrap") == task.success_threshold()


def test_threshold_is_the_mse_of_the_eps_perturbed_recurrent_solution():
    """hoedt/stable-nalu: input weights 1 - eps / eps, recurrent weights (1 - eps) I, run as a model."""
    task = RecurrentArithTask(TASK, NAU, seed=1)
    model = accumulator(task, 1 - SUCCESS_EPS, SUCCESS_EPS, 1 - SUCCESS_EPS)
    # (rel 1e-4: the fixed set's targets are rounded to float32, the threshold's are exact)
    assert task.threshold_at("test/len30") == pytest.approx(mse(model, task, "test/len30"), rel=1e-4)
    x, _ = task.fixed_set("test/extrap")
    sums = x.double()[..., task.subsets.a_start : task.subsets.b_stop]
    assert recurrent_eps_threshold(
        torch.stack([sums[..., :2].sum(-1), sums[..., 1:].sum(-1)], -1), x.double().sum(-1), "add"
    ) == pytest.approx(task.success_threshold(), rel=1e-9)  # subsets x[o:o+2], x[o+1:o+3] here


def test_length_success_tells_an_exact_accumulator_from_a_leaky_one():
    task = RecurrentArithTask(TASK, NAU, seed=2)
    exact, leaky = accumulator(task), accumulator(task, diagonal=1 - 1e-3)
    for model, expected in ((exact, 1.0), (leaky, 0.0)):
        metrics = task.finalize_metrics("test/len30", {"mse": mse(model, task, "test/len30"), "mae": 0.0})
        assert metrics["success"] == expected
        assert metrics["normalized"] >= 0
    # the leaky one is fine at the training length: only the long sequences expose it
    assert mse(leaky, task, "test/interp") < 0.05 * mse(leaky, task, "test/len30")  # error ~ length^4
    assert "success" not in task.finalize_metrics("test/interp", {"mse": 0.0, "mae": 0.0})


def test_identity_state_init_starts_the_state_weights_at_one():
    task = RecurrentArithTask(TASK | {"state_init": "identity"}, NAU, seed=0)
    w = task.build_model().cell.unit.W
    assert torch.equal(w[:, 10:], torch.eye(2))
    assert not torch.equal(w[:, :10], torch.zeros(2, 10))  # the input weights keep the unit's init


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"state_init": "zeros"}, "task.state_init='zeros' is not valid; choose one of: unit, identity"),
        ({"test_lengths": [0]}, r"task.test_lengths=\[0\] must be a list of sequence lengths >= 1"),
        ({"extrap_length": 0}, "task.extrap_length=0 must be >= 1"),
    ],
)
def test_bad_task_values_name_the_value(change, message):
    with pytest.raises(ConfigError, match=message):
        RecurrentArithTask(TASK | change, NAU, seed=0)


def test_identity_init_needs_a_unit_cell_with_a_weight_matrix():
    lstm = {"name": "lstm", "first": "lstm", "second": "linear"}
    with pytest.raises(ConfigError, match="task.state_init=identity needs a unit cell"):
        RecurrentArithTask(TASK | {"state_init": "identity"}, lstm, seed=0).build_model()


@pytest.mark.parametrize(
    ("op", "unit", "first", "second"),
    [("add", "nau_split", "nau", "nau"), ("sub", "nau", "nau", "nau"), ("mul", "nmu", "nau", "nmu")],
)
def test_unit_auto_picks_the_ops_unit_and_recipe(op, unit, first, second):
    cfg = compose(["task=recurrent_arith", f"task.op={op}"])
    assert (cfg.unit.name, cfg.unit.first, cfg.unit.second) == (unit, first, second)
    recipe = cfg.task.recipes[op]
    for key, value in recipe.items():
        node = cfg
        for part in key.split("."):
            node = node[part]
        assert node == value, key
    named = compose(["task=recurrent_arith", f"task.op={op}", "unit=lstm"])  # a named unit: shared recipe
    assert named.unit.name == "lstm" and named.task.state_init == "unit"


def test_a_replica_run_reports_every_length(make_cfg):
    from nalu_suite.train import train

    cfg = make_cfg(
        "task=recurrent_arith",
        "task.op=sub",
        "replicas=2",
        "threads=1",
        "task.eval_size=100",
        "task.extrap_eval_size=10",
        "task.extrap_length=50",
        "task.test_lengths=[20]",
        "task.baseline_draws=1",
        "trainer.max_steps=20",
        "trainer.val_check_interval=10",
        "replica_data=none",
    )
    results = train(cfg)
    for row in results["replicas"]:
        for split in ("test/interp", "test/len20", "test/extrap"):
            assert {f"{split}/mse", f"{split}/normalized"} <= row.keys()
        assert row["test/len20/success"] in (0.0, 1.0) and row["test/extrap/success"] in (0.0, 1.0)
    assert "test/extrap/success_rate" in results and "test/len20/success" in results
    saved = json.loads((Path(cfg.paths.output_dir) / "results.json").read_text())
    assert saved["test/len20/success"] == results["test/len20/success"]


def test_paper_table1_on_a_tiny_grid_writes_table_csv_and_figure(tmp_path):
    from nalu_suite.cli.table import main

    main(
        [
            "paper-table1",
            "--out",
            str(tmp_path),
            "--halves",
            "recurrent",
            "--ops",
            "add",
            "--units",
            "nau,lstm",
            "--replicas",
            "2",
            "--recurrent-steps",
            "10",
            "threads=1",
            "replica_data=none",
            "task.eval_size=50",
            "task.extrap_eval_size=5",
            "task.extrap_length=30",
            "task.test_lengths=[20]",
            "task.baseline_draws=1",
            "task.rnn_hidden_size=4",
        ]
    )
    table = (tmp_path / "table1.md").read_text()
    assert (
        "`LSTM` | *paper* | `NAU`" in table
    )  # the paper's column, its number beside it, then the successors
    assert "| Extrapolation | a + b |" in table and "*≈96.1*" in table and "Wall time" in table
    rows = (tmp_path / "table1.csv").read_text().splitlines()
    assert rows[0].startswith("half,split,op,unit,seeds,steps,mean,median,success_rate")
    assert len(rows) == 1 + 2 * 2  # interpolation and extrapolation of two units
    assert any(r.startswith("recurrent,extrap,add,lstm,2,10,") and ",≈96.1," in r for r in rows)
    assert (tmp_path / "table1.png").stat().st_size > 0
    assert (tmp_path / "recurrent" / "op=add,unit=nau" / "results.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ops", "pow"], "--ops 'pow' is not valid; choose from: add, sub, mul, div, square, sqrt"),
        (["--halves", "both"], "--halves 'both' is not valid; choose from: static, recurrent"),
        (["--units", "nau,lstmm"], "--units 'lstmm' is not valid; choose from: "),
        (["--replicas", "0"], "--replicas 0: must be at least 1"),
    ],
)
def test_paper_table1_bad_options_give_one_line(tmp_path, capsys, args, message):
    from nalu_suite.cli.table import main

    with pytest.raises(SystemExit) as exit_info:
        main(["paper-table1", "--out", str(tmp_path), *args])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("nalu-table paper-table1: error: ") and message in error


def test_the_nau_cell_whitens_its_input_columns_and_scales_its_state_columns():
    from nalu_suite.whitened_adam import uniform_whitening

    task = RecurrentArithTask(TASK | {"state_step": 0.1}, NAU, seed=0)
    (name, p), *rest = task.input_whitening().items()
    assert name == "cell.unit.W" and not rest and p.shape == (12, 12)
    torch.testing.assert_close(p[:10, :10], uniform_whitening(10, 1.0, 2.0))
    assert torch.equal(p[10:, 10:], 0.1 * torch.eye(2))
    assert not p[:10, 10:].any() and not p[10:, :10].any()
    lstm = {"name": "lstm", "first": "lstm", "second": "linear"}
    assert RecurrentArithTask(TASK, lstm, seed=0).input_whitening() == {}


@pytest.mark.parametrize(
    "curriculum",
    [[[10, 100]], [[0, 100]], [[3, 100], [2, 200]], [[2, 200], [3, 100]], [[2]], [[2, 0]], [[2.5, 100]], 5],
)
def test_a_bad_curriculum_is_a_config_error_naming_it(curriculum):
    message = r"task.curriculum=.* must be a list of \[length, until_step\] pairs"
    with pytest.raises(ConfigError, match=message):
        RecurrentArithTask(TASK | {"curriculum": curriculum}, NAU, seed=0)


def test_a_curriculum_sample_is_the_plain_sample_with_each_stages_prefix_target_first():
    plain = RecurrentArithTask(TASK, NAU, seed=4)
    staged = RecurrentArithTask(TASK | {"curriculum": [[2, 30], [5, 60]]}, NAU, seed=4)
    x, y = plain.training_sample(torch.Generator().manual_seed(1), 16)
    xs, ys = staged.training_sample(torch.Generator().manual_seed(1), 16)
    assert torch.equal(xs, x) and ys.shape == (16, 3)
    assert torch.equal(ys[:, 2:], y)  # the whole sequence's target is the plain one, bit for bit
    for column, length in enumerate((2, 5)):
        assert torch.equal(ys[:, column : column + 1], plain.target(x[:, :length]))
    out = (torch.empty(16, 10, 10), torch.empty(16, 3))  # the replica engine's draw into its slots
    staged.training_sample(torch.Generator().manual_seed(1), 16, out=out)
    assert torch.equal(out[0], x) and torch.equal(out[1], ys)


def test_the_loss_trains_each_stage_on_its_prefix_then_on_the_whole_sequence():
    task = RecurrentArithTask(TASK | {"curriculum": [[2, 30], [5, 60]]}, NAU, seed=4)
    model = accumulator(task, in_weight=0.9).float()
    x, y = task.training_sample(torch.Generator().manual_seed(1), 16)
    expected = {
        0: (x[:, :2], y[:, 0:1]),
        29: (x[:, :2], y[:, 0:1]),
        30: (x[:, :5], y[:, 1:2]),
        60: (x, y[:, 2:]),
        10_000: (x, y[:, 2:]),
    }
    losses = set()
    for step, (inputs, target) in expected.items():
        task.on_train_step(step)
        loss = task.loss(model, (x, y))
        assert loss == torch.nn.functional.mse_loss(model(inputs), target), step
        losses.add(float(loss.detach()))
    assert len(losses) == 3  # the stages really differ
    x_eval, y_eval = task.fixed_set("val")  # (n, 1) targets: always the whole sequence
    task.on_train_step(0)
    assert task.loss(model, (x_eval, y_eval)) == torch.nn.functional.mse_loss(model(x_eval), y_eval)


def test_a_curriculum_replica_reproduces_its_plain_lightning_run(make_cfg, tmp_path):
    from omegaconf import open_dict

    from nalu_suite.train import train

    common = [
        "task=recurrent_arith",
        "task.op=add",
        "unit=nau",
        "task.curriculum=[[2,12]]",
        "task.eval_size=50",
        "task.extrap_eval_size=8",
        "task.extrap_length=30",
        "task.test_lengths=[]",
        "task.baseline_draws=1",
        "batch_size=16",
        "trainer.max_steps=24",
        "trainer.val_check_interval=8",
        "threads=1",
    ]
    rows = {}
    runs = (("plain", ["seed=1"]), ("replicas", ["seed=0", "replicas=2", "replica_data=none"]))
    for name, overrides in runs:
        cfg = make_cfg(*common, *overrides)
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp_path / name)
        results = train(cfg)
        rows[name] = results["replicas"][1] if name == "replicas" else results
    for key in ("test/interp/mse", "test/extrap/mse", "val/mse"):
        assert rows["replicas"][key] == pytest.approx(rows["plain"][key], rel=1e-5), key


@pytest.mark.parametrize(
    ("op", "curriculum"),
    [
        ("add", []),
        ("sub", []),
        ("sqrt", []),
        ("mul", [[1, 18000]]),
        ("square", [[1, 18000]]),
        ("div", [[1, 18000]]),
    ],
)
def test_every_ops_recipe_resolves_in_place_with_its_curriculum(op, curriculum):
    from omegaconf import OmegaConf

    cfg = compose(["task=recurrent_arith", f"task.op={op}"])
    OmegaConf.resolve(cfg.task)  # in place, as `--cfg job` and the training entry do
    assert cfg.task.curriculum == curriculum
    assert OmegaConf.create(OmegaConf.to_yaml(cfg.task)).curriculum == curriculum
