"""Sequential MNIST product (Madsen & Johansen 2020 §4.2): targets, digits 1-9, cells, R_z, success.

Everything runs on tiny IDX files written here: every image carries its digit in pixel (0, 0) (``20 * k``)
and a bright bar, so :class:`PixelDigit` is a hand-set, exact "CNN" for the models under test.
"""

from __future__ import annotations

import pytest
import torch

from nalu_suite.errors import ConfigError
from nalu_suite.metrics import ErrorStats
from nalu_suite.tasks.mnist.data import write_idx_gz
from nalu_suite.tasks.mnist.product import MnistProdTask, main, nmu_z_regularizer, reference_thresholds
from nalu_suite.tasks.mnist.sequences import cumprod_targets
from nalu_suite.units.cells import LSTMCell
from nalu_suite.units.nac import NACMul
from nalu_suite.units.nmu import NMU

N_TRAIN, N_TEST, N_VAL = 60, 30, 10
UNITS = {
    name: {"name": name, "first": first, "second": second, "first_options": {}, "second_options": {}}
    for name, first, second in [
        ("nmu", "nau", "nmu"),
        ("nac_mul", "nac_add", "nac_mul"),
        ("lstm", "lstm", "linear"),
    ]
}
LENGTHS = [1, 3, 7]  # 9**7 < 2**24: the products of exact digits are exact in float32


def images_of(labels: torch.Tensor) -> torch.Tensor:
    images = torch.zeros(len(labels), 28, 28, dtype=torch.uint8)
    for i, k in enumerate(labels.tolist()):
        images[i, 0, 0] = 20 * k
        images[i, 2 * k + 4 : 2 * k + 6, 4:24] = 255
    return images


@pytest.fixture
def mnist_dir(tmp_path):
    """``tmp_path/data/mnist``: 60 training and 30 test images, digits 0-9 in turn."""
    for split, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        labels = torch.arange(n) % 10
        write_idx_gz(tmp_path / "data" / "mnist" / f"{split}-labels-idx1-ubyte.gz", labels)
        write_idx_gz(tmp_path / "data" / "mnist" / f"{split}-images-idx3-ubyte.gz", images_of(labels))
    return tmp_path / "data"


def config(**overrides) -> dict:
    cfg = {
        "name": "mnist_prod",
        "verify_checksums": False,
        "digits": [1, 2, 3, 4, 5, 6, 7, 8, 9],
        "train_length": 2,
        "val_images": N_VAL,
        "val_sequences": 8,
        "test_lengths": LENGTHS,
        "test_sequences": 12,
        "cnn": "2018",
        "cnn_dropout": 0.0,
        "hidden_size": 1,
        "rnn_hidden_size": 4,
        "regularizer_z": 1.0,
    }
    return cfg | overrides


def make_task(mnist_dir=None, unit="nmu", **overrides) -> MnistProdTask:
    data = {"data_dir": str(mnist_dir)} if mnist_dir else {}
    task = MnistProdTask(config(**data, **overrides), UNITS[unit], seed=0)
    if mnist_dir:
        task.require_digits()
    return task


class PixelDigit(torch.nn.Module):
    """The exact digit value of the test images: pixel (0, 0) / 20, as a one-output CNN."""

    def forward(self, images):
        return images[..., 0, 0].float().unsqueeze(-1) / 20


def hand_set(task, w_digit: float, w_state: float):
    """The task's NMU model with the exact CNN and the cell's weights on ``[z_t, h_{t-1}]`` set by hand."""
    model = task.build_model()
    model.cnn = PixelDigit()
    with torch.no_grad():
        model.cell.unit.W.copy_(torch.tensor([[w_digit, w_state]]))
    return model.eval()


def evaluate(task, model) -> dict[str, dict[str, float]]:
    """Every test split's logged metrics, as the training system computes them."""
    out = {}
    for split in task.test_splits:
        metric = ErrorStats()
        with torch.no_grad():
            metric.update(*task.predict(model, task.fixed_set(split)))
        out[split] = task.finalize_metrics(split, {k: float(v) for k, v in metric.compute().items()})
    return out


# --- data ----------------------------------------------------------------------------------------
def test_targets_are_running_products():
    labels = torch.tensor([[2, 3, 4], [9, 1, 5]])
    assert cumprod_targets(labels).tolist() == [[2, 6, 24], [9, 9, 45]]
    assert cumprod_targets(torch.full((1, 20), 9))[0, -1].item() == pytest.approx(9.0**20, rel=1e-7)


def test_pools_leave_out_zeros_and_fixed_sets_hold_running_products(mnist_dir):
    task = make_task(mnist_dir)
    labels = task.digits.labels
    assert (labels == 0).any(), "the fixture has zeros to leave out"
    for pool in ("train", "val", "test"):
        assert len(task.pool(pool)) and (labels[task.pool(pool)] != 0).all()
    assert len(task.pool("test")) == N_TEST - N_TEST // 10
    for split in ("val", *task.test_splits):
        indices, target = task.fixed_set(split)
        assert target.shape == indices.shape
        assert torch.equal(target, labels[indices].double().cumprod(dim=1).float())
    row = task.preview(1)[0]
    digits = labels[row["inputs"]].tolist()
    assert row["target"] == [digits[0], digits[0] * digits[1]]


# --- model -----------------------------------------------------------------------------------------
def test_the_nmu_cell_is_the_prediction_at_every_step(mnist_dir):
    model = make_task(mnist_dir).build_model()
    assert isinstance(model.cell.unit, NMU) and model.cell.unit.max_exponent >= 44  # 9**20 = e**43.9
    assert model.cell.initial_value == 1.0 and isinstance(model.second, torch.nn.Identity)
    nac_mul = make_task(mnist_dir, unit="nac_mul").build_model()  # the unit's output layer is the cell
    assert isinstance(nac_mul.cell.unit, NACMul) and isinstance(nac_mul.second, torch.nn.Identity)
    lstm = make_task(mnist_dir, unit="lstm").build_model()
    assert isinstance(lstm.cell, LSTMCell) and lstm.cell.hidden_size == 4
    assert lstm.accumulate(torch.rand(5, 3, 1)).shape == (5, 3)


def test_solved_core_is_the_exact_running_product_of_the_cnn_outputs(mnist_dir):
    task = make_task(mnist_dir, core="solved")
    model = task.build_model()
    z = torch.rand(4, 5, 1) + 0.5
    torch.testing.assert_close(model.accumulate(z), z[..., 0].cumprod(dim=1))
    assert not any(p.requires_grad for n, p in model.named_parameters() if not n.startswith("cnn."))


def test_exact_model_succeeds_at_every_length_and_a_wrong_one_fails(mnist_dir):
    task = make_task(mnist_dir, thresholds=[1e-3] * len(LENGTHS))
    exact = evaluate(task, hand_set(task, 1.0, 1.0))
    assert all(m["mse"] == 0 and m["acc"] == 1 and m["success"] == 1 for m in exact.values())
    # a state weight of 0.9 scales the running product by 0.9 * h + 0.1: right after one image only
    wrong = evaluate(task, hand_set(task, 1.0, 0.9))
    assert [wrong[f"test/len{n}"]["success"] for n in LENGTHS] == [1, 0, 0]
    # a digit weight of 0.9 is wrong from the first image on
    assert all(m["success"] == 0 for m in evaluate(task, hand_set(task, 0.9, 1.0)).values())
    assert task.success_metric == "test/len7/mse" and task.success_threshold() == 1e-3


def test_r_z_is_zero_at_the_exact_weights_and_pushes_weights_towards_one(mnist_dir):
    weight = torch.tensor([[1.0, 0.5]], requires_grad=True)
    inputs = torch.tensor([[[4.0, 1.0], [6.0, 5.0]]])  # means 5 and 3
    r_z = nmu_z_regularizer(weight, inputs)
    assert r_z.item() == pytest.approx((0 * 16 + 0.5 * 4) / 2)
    r_z.backward()
    assert weight.grad[0, 1] < 0, "gradient descent raises the weight of an input that does not average 1"
    task = make_task(mnist_dir)
    model = hand_set(task, 1.0, 1.0).train()
    batch = task.sample_train(torch.Generator().manual_seed(0), 8)
    plain = make_task(mnist_dir, regularizer_z=0.0).loss(model, batch)
    assert plain.item() == pytest.approx(0.0, abs=1e-9)
    with torch.no_grad():
        model.cell.unit.W.fill_(0.5)
    added = task.loss(model, batch) - make_task(mnist_dir, regularizer_z=0.0).loss(model, batch)
    assert added.item() > 0


def test_reference_thresholds_follow_madsen_and_johansen():
    # two runs: mean 2 and 3, sd sqrt(2); t_{0.99, 1} = 31.8205
    got = reference_thresholds([[1.0, 2.0], [3.0, 4.0]])
    assert got == pytest.approx([2 + 31.8205, 3 + 31.8205], rel=1e-5)
    with pytest.raises(ConfigError, match="at least 2 runs"):
        reference_thresholds([[1.0, 2.0]])


def test_thresholds_cli_reads_the_reference_runs(tmp_path, capsys):
    import json

    for seed, scale in enumerate((1.0, 3.0)):
        run = tmp_path / f"ref{seed}"
        run.mkdir()
        row = {f"test/len{n}/mse": scale * n for n in (1, 2)} | {"val/mse": 0.5, "test/len1/acc": 1.0}
        (run / "results.json").write_text(json.dumps(row))
    assert main([str(tmp_path / "ref0"), str(tmp_path / "ref1")]) == 0
    out = capsys.readouterr().out
    assert "test_lengths: [1, 2]" in out and "thresholds: [33.82, 67.64]" in out
    assert main([str(tmp_path / "ref0")]) == 2


# --- config ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"thresholds": [1.0, 2.0]}, r"task.thresholds has 2 values but task.test_lengths has 3"),
        ({"digits": [0, 10]}, r"task.digits=\[0, 10\] must be a non-empty list of digits 0-9"),
        ({"digits": []}, r"task.digits=\[\] must be a non-empty list"),
        ({"core": "joint"}, r"task.core='joint' is not valid for mnist_prod; choose one of: shared, solved"),
        ({"cell": "nope"}, r"task.cell='nope' is not valid; choose one of: auto, linear"),
        ({"regularizer_z": -1}, r"task.regularizer_z=-1 must be >= 0"),
        ({"hidden_size": 2}, r"task.hidden_size=2 must be 1: without a readout the state is the output"),
    ],
)
def test_bad_values_raise_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        make_task(**override)


def test_train_cli_reports_a_bad_value_in_one_line(run_script, tmp_path):
    result = run_script(
        "train.py", "task=mnist_prod", "task.thresholds=[1,2]", f"hydra.run.dir={tmp_path}", timeout=120
    )
    assert result.returncode == 2
    assert "task.thresholds has 2 values but task.test_lengths has 20" in result.stderr
    assert "Traceback" not in result.stderr
