"""Program evaluation (paper §4.4): generated programs, encoding, the configured-unit model, training."""

from __future__ import annotations

import contextlib
import io
import json
import math
import random

import pytest
import torch

from nalu_suite.errors import ConfigError
from nalu_suite.tasks.program_eval.candidates import Candidates
from nalu_suite.tasks.program_eval.encoding import encode_programs, literal_positions, number_features
from nalu_suite.tasks.program_eval.metric import ProgramMetric, digit_matches
from nalu_suite.tasks.program_eval.models import ConfiguredUnitModel, DirectRegressionModel, gain_at
from nalu_suite.tasks.program_eval.per_sample import apply_per_sample
from nalu_suite.tasks.program_eval.programs import (
    NUMBER,
    OPERATIONS,
    TOKEN_IDS,
    ProgramGenerator,
    digits_range,
    max_literals,
    tokenize,
)
from nalu_suite.tasks.program_eval.reader import reverse_within_length
from nalu_suite.tasks.program_eval.task import ProgramEvalTask
from nalu_suite.units import build_unit

TASK = {
    "name": "program_eval",
    "kind": "programs",
    "nesting": 2,
    "operations": list(OPERATIONS),
    "train_digits": 2,
    "test_digits": [2, 3, 4],
    "value_scale": 100,
    "value_gain": 5,
    "controller": "lstm",
    "controller_inputs": "relative",
    "configure_from": "literals",
    "hyper_gain": 10,
    "embedding_size": 8,
    "hidden_size": 16,
    "eval_size": 50,
    "figure_size": 20,
    "chunk": 5,
}
NALU = {"name": "nalu", "first": "nalu", "second": "nalu"}
LSTM = {"name": "lstm", "first": "lstm", "second": "linear"}


def python_prints(source: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(source, {})  # the generated program, run by Python itself
    return out.getvalue()


# --- programs ------------------------------------------------------------------------------------
def test_every_generated_program_prints_its_target_under_python():
    rng = random.Random(0)
    checked = 0
    for kind, nesting in [
        ("addition", 1),
        ("programs", 1),
        ("programs", 2),
        ("programs", 3),
        ("programs", 4),
    ]:
        for digits in (1, 2, 3, 4, 6):
            for exact in (False, True):
                for program in ProgramGenerator(kind, digits, nesting, exact_digits=exact).samples(rng, 50):
                    assert python_prints(program.source) == f"{program.target}\n", program.source
                    checked += 1
    assert checked == 2500


def test_target_is_a_signed_sum_of_the_literals_in_source_order():
    rng = random.Random(1)
    for program in ProgramGenerator("programs", 3, 3).samples(rng, 300):
        assert set(program.coefficients) <= {-1, 0, 1}
        assert (
            sum(c * v for c, v in zip(program.coefficients, program.literals, strict=True)) == program.target
        )
        _, values = tokenize(program.source)
        assert [v for v in values if v is not None] == list(program.literals)


def test_programs_use_every_operation_and_both_statement_and_expression_ifs():
    sources = [p.source for p in ProgramGenerator("programs", 2, 2).samples(random.Random(2), 400)]
    assert any("else:\n" in s for s in sources)  # if statement
    assert any(" if " in s and " else " in s for s in sources)  # conditional expression
    assert any(s.count("\n") == 1 and "=" in s for s in sources)  # variable assignment then print
    assert any("-" in s for s in sources) and any("+" in s for s in sources)
    assert any(python_prints(s).startswith("-") for s in sources)  # negative answers occur


def test_addition_kind_is_one_sum_of_two_literals():
    for program in ProgramGenerator("addition", 3).samples(random.Random(3), 50):
        a, b = program.literals
        assert program.source == f"print(({a}+{b}))"
        assert program.target == a + b


@pytest.mark.parametrize("digits", [1, 2, 3, 4])
def test_digit_length_control(digits):
    low, high = digits_range(digits)
    assert (low, high) == (0, 10**digits)
    values = [
        v for p in ProgramGenerator("programs", digits, 2).samples(random.Random(4), 300) for v in p.literals
    ]
    assert min(values) >= 0 and max(values) < 10**digits
    assert max(values) >= 10**digits * 0.9  # the whole range is used
    exact = [
        v
        for p in ProgramGenerator("programs", digits, 2, exact_digits=True).samples(random.Random(4), 300)
        for v in p.literals
    ]
    expected_lengths = {digits} if digits > 1 else {1}
    assert {len(str(v)) for v in exact} == expected_lengths


def test_literal_count_is_bounded_by_max_literals():
    for nesting in (1, 2, 3):
        programs = ProgramGenerator("programs", 2, nesting).samples(random.Random(5), 300)
        counts = {len(p.literals) for p in programs}
        assert max(counts) == max_literals("programs", nesting)


def test_generator_rejects_bad_settings_naming_the_choices():
    with pytest.raises(ConfigError, match="task.kind='mul'.*addition, programs"):
        ProgramGenerator("mul")
    with pytest.raises(ConfigError, match="loop.*pair, vars, if_expr, if_stmt"):
        ProgramGenerator("programs", operations=["pair", "loop"])
    with pytest.raises(ConfigError, match="nesting"):
        ProgramGenerator("programs", nesting=0)
    with pytest.raises(ConfigError, match="digits"):
        digits_range(0)


# --- encoding ------------------------------------------------------------------------------------
def test_encoding_puts_each_literal_value_at_its_number_token():
    programs = ProgramGenerator("programs", 4, 2).samples(random.Random(6), 20)
    tokens, lengths, numbers, literals, target = encode_programs(programs, max_literals("programs", 2))
    assert tokens.shape == numbers.shape and literals.shape == (20, 7) and target.shape == (20,)
    for i, program in enumerate(programs):
        is_number = tokens[i] == TOKEN_IDS[NUMBER]
        assert numbers[i][is_number].tolist() == list(program.literals)  # one whole value per step, in order
        assert numbers[i][~is_number].abs().sum() == 0
        assert literals[i, : len(program.literals)].tolist() == list(program.literals)
        assert literals[i, len(program.literals) :].abs().sum() == 0
        assert (tokens[i, lengths[i] :] == 0).all() and (tokens[i, : lengths[i]] != 0).all()
        assert target[i] == program.target


def test_number_features_are_scaled_and_relative_values():
    numbers = torch.tensor([[0.0, 40.0, 0.0, 80.0], [0.0, 0.0, 0.0, 0.0]])
    both = number_features(numbers, 100.0, "both")
    assert torch.equal(both[0, :, 0], torch.tensor([0.0, 0.4, 0.0, 0.8]))
    assert torch.equal(both[0, :, 1], torch.tensor([0.0, 0.5, 0.0, 1.0]))
    assert torch.equal(both[1], torch.zeros(4, 2))  # no literals: no division by zero
    assert torch.equal(number_features(numbers, 100.0, "relative")[..., 0], both[..., 1])


def test_relative_channel_does_not_change_with_the_digit_length():
    numbers = torch.tensor([[12.0, 0.0, 57.0, 3.0]])
    assert torch.equal(
        number_features(numbers, 100, "relative"), number_features(numbers * 1000, 100, "relative")
    )
    assert not torch.equal(
        number_features(numbers, 100, "scaled"), number_features(numbers * 1000, 100, "scaled")
    )


def test_literal_positions_and_reversal_respect_each_rows_length():
    tokens, lengths, *_ = encode_programs(ProgramGenerator("programs", 2, 2).samples(random.Random(7), 10), 7)
    positions, present = literal_positions(tokens, 7)
    for i in range(10):
        steps = (tokens[i] == TOKEN_IDS[NUMBER]).nonzero().flatten().tolist()
        assert positions[i, present[i]].tolist() == steps
    x = torch.arange(5.0).expand(2, 5).unsqueeze(-1)
    reversed_ = reverse_within_length(x, torch.tensor([5, 3])).squeeze(-1)
    assert reversed_.tolist() == [[4, 3, 2, 1, 0], [2, 1, 0, 3, 4]]


# --- metric --------------------------------------------------------------------------------------
def test_digit_matches_compares_right_aligned_characters_including_the_sign():
    pred = torch.tensor([124.0, 44.0, 1123.0, float("nan"), -44.2, 7.6, 1e30])
    target = torch.tensor([123.0, -44.0, 123.0, 5.0, -44.0, 8.0, 10.0])
    matches, total = digit_matches(pred, target)
    assert total.tolist() == [3, 3, 3, 1, 3, 1, 2]
    assert matches.tolist() == [2, 2, 3, 0, 3, 1, 0]


def test_program_metric_pools_digit_accuracy_over_batches():
    metric = ProgramMetric()
    metric.update(torch.tensor([123.0, 5.0]), torch.tensor([124.0, 5.0]))
    metric.update(torch.tensor([-10.0]), torch.tensor([-10.0]))
    values = metric.compute()
    assert float(values["digit_acc"]) == pytest.approx((2 + 1 + 3) / (3 + 1 + 3))
    assert float(values["exact"]) == pytest.approx(2 / 3)
    assert float(values["mae"]) == pytest.approx(1 / 3)


# --- models --------------------------------------------------------------------------------------
def batch_of(kind="programs", digits=2, nesting=2, n=6, seed=8):
    programs = ProgramGenerator(kind, digits, nesting, exact_digits=digits > 2).samples(
        random.Random(seed), n
    )
    return programs, encode_programs(programs, max_literals(kind, nesting))


@pytest.mark.parametrize("configure_from", ["literals", "final"])
@pytest.mark.parametrize("unit", ["nalu", "nac", "nau", "inalu", "npu", "nmu"])
def test_configured_unit_shapes_and_gradients(unit, configure_from):
    torch.manual_seed(0)
    _, (tokens, lengths, numbers, literals, target) = batch_of()
    model = ConfiguredUnitModel(
        unit=unit, num_literals=7, configure_from=configure_from, embedding_size=8, hidden_size=16
    )
    params, present = model.configure(tokens, lengths, numbers)
    template = dict(build_unit(unit, 7, 1).named_parameters())
    assert {k: tuple(v.shape) for k, v in params.items()} == {k: (6, *v.shape) for k, v in template.items()}
    assert not torch.allclose(params[next(iter(params))][0], params[next(iter(params))][1])  # per program
    pred = model(tokens, lengths, numbers, literals)
    assert pred.shape == (6,) and torch.isfinite(pred).all()
    (pred / 100 - target / 100).pow(2).mean().backward()
    trained = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in model.reader.cell.parameters())
    assert sum(float(p.grad.abs().sum()) for p in trained if p.grad is not None) > 0
    assert all(p.grad is None for p in model.template.parameters())  # the template is never trained


def test_per_sample_unit_matches_the_unit_run_with_each_samples_parameters():
    torch.manual_seed(1)
    unit = build_unit("nalu", 4, 1)
    params = {k: torch.randn(3, *v.shape) for k, v in unit.named_parameters()}
    x = torch.rand(3, 4) * 5
    batched = apply_per_sample(unit, params, x)
    looped = apply_per_sample(unit, params, x, vmap=False)
    for i in range(3):
        single = build_unit("nalu", 4, 1)
        with torch.no_grad():
            for name, p in single.named_parameters():
                p.copy_(params[name][i])
        assert torch.allclose(batched[i], single(x[i : i + 1])[0], rtol=1e-5)
    assert torch.allclose(batched, looped, rtol=1e-5)


def exact_nac_parameters(programs, num_literals, big=20.0):
    """NAC parameters that select each program's coefficients: W = tanh(+-big) * sigmoid(+-big)."""
    coefficients = torch.zeros(len(programs), 1, num_literals)
    for i, p in enumerate(programs):
        coefficients[i, 0, : len(p.coefficients)] = torch.tensor(p.coefficients, dtype=torch.float32)
    return {"W_hat": big * coefficients, "M_hat": big * (2 * (coefficients != 0).float() - 1)}


def test_a_nac_with_the_programs_coefficients_is_exact_at_four_digits_and_has_no_regulariser():
    programs, (tokens, lengths, numbers, literals, target) = batch_of(digits=4, nesting=3, n=50)
    model = ConfiguredUnitModel(unit="nac", num_literals=10, embedding_size=8, hidden_size=16)
    params = exact_nac_parameters(programs, 10)
    answer = 100 * apply_per_sample(model.template, params, literals / 100).squeeze(-1)
    assert torch.equal(answer.round(), target)
    model._last = (params, literal_positions(tokens, 10)[1])
    assert float(model.regularizer()) == pytest.approx(0.0, abs=1e-6)
    assert float(model.sparsity_error()) == pytest.approx(0.0, abs=1e-6)


def test_regularizer_penalises_configured_weights_away_from_minus_one_zero_and_one():
    _, (tokens, lengths, numbers, literals, _) = batch_of()
    model = ConfiguredUnitModel(unit="nau", num_literals=7, embedding_size=8, hidden_size=16)
    model(tokens, lengths, numbers, literals)
    reg = model.regularizer()
    assert float(reg.detach()) > 0.01 and 0 < float(model.sparsity_error()) <= 0.5
    reg.backward()
    assert model.column_head.weight.grad.abs().sum() > 0


def test_gain_schedule_interpolates_between_its_knots_and_is_constant_outside():
    knots = [(0, 1.0), (100, 10.0), (200, 10.0), (300, 40.0)]
    assert [gain_at(knots, s) for s in (0, 50, 100, 150, 250, 300, 10_000)] == [1, 5.5, 10, 10, 25, 40, 40]
    assert gain_at([(10, 2.0)], 0) == 2.0


def test_hyper_gain_schedule_scales_the_configured_parameters_and_is_checkpointed():
    _, (tokens, lengths, numbers, literals, _) = batch_of()
    torch.manual_seed(3)
    model = ConfiguredUnitModel(
        unit="nac", num_literals=7, embedding_size=8, hidden_size=16, hyper_gain_schedule=[[0, 1], [100, 10]]
    )
    assert float(model.current_gain) == 1.0  # built for training: the schedule's first gain
    at_start = model.configure(tokens, lengths, numbers)[0]["W_hat"]
    model.on_train_step(50)
    assert float(model.current_gain) == pytest.approx(5.5)
    assert torch.allclose(model.configure(tokens, lengths, numbers)[0]["W_hat"], 5.5 * at_start, rtol=1e-5)
    model.on_train_step(100_000)
    assert float(model.current_gain) == 10.0
    model.on_train_step(20)  # a checkpoint keeps the gain it was validated with
    restored = ConfiguredUnitModel(unit="nac", num_literals=7, embedding_size=8, hidden_size=16)
    assert float(restored.current_gain) == 10.0  # no schedule: hyper_gain throughout
    restored.on_train_step(20)
    assert float(restored.current_gain) == 10.0
    restored.load_state_dict(model.state_dict())
    assert float(restored.current_gain) == pytest.approx(2.8)


def test_eval_gain_sharpens_the_configured_weights_without_moving_a_decision():
    programs, (tokens, lengths, numbers, literals, target) = batch_of(n=20)
    torch.manual_seed(4)
    model = ConfiguredUnitModel(unit="nac", num_literals=7, embedding_size=8, hidden_size=16, eval_gain=100)
    trained = model.configure(tokens, lengths, numbers)[0]
    model.eval()
    sharp = model.configure(tokens, lengths, numbers)[0]
    assert torch.allclose(sharp["W_hat"], 10 * trained["W_hat"], rtol=1e-5)  # 100 / the training gain 10
    assert torch.equal(sharp["M_hat"].sign(), trained["M_hat"].sign())
    model.train()
    assert torch.equal(model.configure(tokens, lengths, numbers)[0]["W_hat"], trained["W_hat"])


def test_baseline_regresses_the_answer_from_both_value_channels():
    _, (tokens, lengths, numbers, literals, _) = batch_of()
    model = DirectRegressionModel(cell="lstm", embedding_size=8, hidden_size=16)
    assert model.reader.cell.input_size == 8 + 2
    pred = model(tokens, lengths, numbers, literals)
    assert pred.shape == (6,)
    pred.sum().backward()
    assert model.readout.weight.grad.abs().sum() > 0


# --- task ----------------------------------------------------------------------------------------
def test_task_picks_the_model_from_the_unit_config():
    assert isinstance(ProgramEvalTask(TASK, NALU, 0).build_model(), ConfiguredUnitModel)
    assert isinstance(ProgramEvalTask(TASK, LSTM, 0).build_model(), DirectRegressionModel)
    ugrnn = ProgramEvalTask(TASK, {**LSTM, "name": "ugrnn", "first": "ugrnn"}, 0).build_model()
    assert type(ugrnn.reader.cell).__name__ == "UGRNNCell"
    task = ProgramEvalTask(TASK, NALU, 0)
    assert task.test_splits == ("test/d2", "test/d3", "test/d4")
    tokens, lengths, numbers, literals, target = task.eval_set("test/d4")
    assert literals.max() >= 1000 and literals[literals > 0].min() >= 1000  # 4-digit literals only


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("kind", "loops", "addition, programs"),
        ("controller_inputs", "raw", "relative, scaled, both"),
        ("configure_from", "middle", "literals, final"),
        ("test_digits", [], "non-empty"),
        ("nesting", 0, "task.nesting"),
        ("value_scale", 0, "positive"),
        ("hyper_gain_schedule", [[0, 1], [0, 10]], "steps must increase"),
        ("hyper_gain_schedule", [[0, -1]], "gain -1 is not a positive number"),
        ("hyper_gain_schedule", [[0.5, 1]], "step 0.5 is not an integer"),
        ("hyper_gain_schedule", [5], r"must be a list of \[step, gain\] pairs"),
        ("eval_gain", 0, "task.eval_gain=0 must be a positive number"),
        ("candidates", 0, "task.candidates=0 must be an integer >= 1"),
    ],
)
def test_bad_task_config_names_the_value_and_the_choices(key, value, message):
    with pytest.raises(ConfigError, match=message):
        ProgramEvalTask({**TASK, key: value}, NALU, 0)


def test_program_eval_trains_candidates_on_the_sum_of_their_losses_and_reports_them():
    task = ProgramEvalTask({**TASK, "candidates": 2}, NALU, 0)
    model = task.build_model()
    assert isinstance(model, Candidates) and len(model.members) == 2
    _, batch = batch_of()
    loss = task.loss(model, batch)
    singles = [torch.nn.functional.mse_loss(m(*batch[:4]) / 100, batch[4] / 100) for m in model.members]
    assert torch.allclose(loss, sum(singles))
    assert torch.allclose(model.running_loss, torch.stack(singles).detach())
    model.eval()
    pred, _ = task.predict(model, batch)
    assert torch.equal(pred, model.members[model.selected](*batch[:4]))


def test_bad_unit_names_the_choices():
    with pytest.raises(ConfigError, match="unit.second='lstm'.*nalu"):
        ProgramEvalTask(TASK, {"name": "x", "first": "nalu", "second": "lstm"}, 0)


def test_preview_shows_source_tokens_and_target():
    rows = ProgramEvalTask({**TASK, "preview_digits": 4}, NALU, 3).preview(5)
    for row in rows:
        assert python_prints(row["text"]) == f"{row['target']}\n"
        assert all(len(str(v)) == 4 for v in row["inputs"])
        assert [t for t in row["tokens"] if t.startswith("<num:")] == [f"<num:{v}>" for v in row["inputs"]]


def test_config_defaults_to_the_configured_unit_and_the_cli_unit_wins(make_cfg):
    cfg = make_cfg("task=program_eval")
    assert cfg.task.kind == "programs" and cfg.unit.second in ("nac", "nalu", "nac_add")
    assert make_cfg("task=program_eval", "unit=lstm").unit.first == "lstm"


def test_short_training_run_learns_addition_and_extrapolates(make_cfg, tmp_path, run_script):
    from omegaconf import OmegaConf

    from nalu_suite.train import train

    cfg = make_cfg(
        "task=program_eval",
        "task.kind=addition",
        "unit=nac",
        "task.eval_size=200",
        "task.figure_size=50",
        "task.hidden_size=16",
        "task.embedding_size=8",
        # the constant training gain: 400 steps end inside the default warm-up; without the eval gain,
        # which would make an untrained model exact whenever its shared column head starts with W, M > 0
        "task.hyper_gain_schedule=null",
        "task.eval_gain=null",
        "trainer.max_steps=400",
        "regularizer.start=150",
        "regularizer.end=250",
        "trainer.val_check_interval=100",
        "batch_size=64",
    )
    untrained = ProgramEvalTask(OmegaConf.to_container(cfg.task), OmegaConf.to_container(cfg.unit), 0)
    torch.manual_seed(0)
    before = untrained.accuracy_by_digits(untrained.build_model(), [4], 200)[4]["exact"]
    results = train(cfg)
    assert before < 0.05
    assert results["test/d2/exact"] >= 0.95
    assert results["test/d4/exact"] >= 0.95
    written = json.loads((tmp_path / "run" / "results.json").read_text())
    assert math.isclose(written["test/d4/digit_acc"], results["test/d4/digit_acc"])
    assert (tmp_path / "run" / "accuracy_by_digits.png").exists()
    done = run_script(
        "scripts/program_breakdown.py",
        str(tmp_path / "run/checkpoints/best.ckpt"),
        "--digits",
        "2,4",
        "--n",
        "200",
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines()[2:]]
    assert [(r[0].strip(), int(r[1])) for r in rows] == [("addition", 2), ("addition", 4)]
    for _, _, exact, decision, precision in rows:  # the script's checkpoint scores as train() tested it
        assert float(exact) >= 0.95 and float(decision) + float(precision) == pytest.approx(
            1 - float(exact), abs=2e-3
        )
    missing = run_script("scripts/program_breakdown.py", str(tmp_path / "nothing.ckpt"))
    assert missing.returncode != 0 and "nothing.ckpt" in missing.stderr


def test_plot_script_pools_seeds_per_configuration(tmp_path, run_script):
    import importlib.util

    for job, (unit, seed, d4) in enumerate([("nac", 0, 1.0), ("nac", 1, 0.8), ("lstm", 0, 0.0)]):
        job_dir = tmp_path / str(job)
        (job_dir / ".hydra").mkdir(parents=True)
        (job_dir / ".hydra" / "overrides.yaml").write_text(f"- unit={unit}\n- seed={seed}\n")
        results = {"test/d2/exact": 1.0, "test/d4/exact": d4, "test/d4/mae": 3.0}
        (job_dir / "results.json").write_text(json.dumps(results))
    spec = importlib.util.spec_from_file_location("plot_program_eval", "scripts/plot_program_eval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.curves(tmp_path, "exact", None) == {
        "unit=lstm": {2: [1.0], 4: [0.0]},
        "unit=nac": {2: [1.0, 1.0], 4: [1.0, 0.8]},
    }
    done = run_script("scripts/plot_program_eval.py", str(tmp_path), "--metric", "exact")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "accuracy_vs_digits_exact.png").stat().st_size > 1000
    missing = run_script("scripts/plot_program_eval.py", str(tmp_path), "--metric", "digit_acc")
    assert missing.returncode != 0 and "no test/d<k>/digit_acc" in missing.stderr
