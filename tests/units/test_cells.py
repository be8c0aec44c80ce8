"""Tests for the recurrent cells in ``nalu_suite.units.cells``."""

from __future__ import annotations

import pytest
import torch

from nalu_suite.units import NAU, NMU, UNIT_NAMES, NACAdd, build_unit
from nalu_suite.units.cells import (
    CELL_NAMES,
    CELLS,
    GRUCell,
    LSTMCell,
    RecurrentCell,
    RNNCell,
    UnitCell,
    build_cell,
    run_cell,
)

CLASSIC = ("lstm", "gru", "rnn_tanh", "rnn_relu")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def integer_sequence(batch: int, steps: int) -> torch.Tensor:
    return torch.randint(-10, 11, (batch, steps, 1)).float()


@pytest.mark.parametrize("unit", ["nau", "nac_add"])
def test_unit_cell_with_ideal_weights_accumulates_a_running_sum_exactly(unit):
    cell = build_cell(unit, 1, 1)
    assert isinstance(cell, UnitCell)
    with torch.no_grad():  # h_t = 1 * x_t + 1 * h_{t-1}
        if isinstance(cell.unit, NAU):
            cell.unit.W.fill_(1.0)
        else:
            assert isinstance(cell.unit, NACAdd)
            cell.unit.W_hat.fill_(20.0)  # tanh(20) == sigmoid(20) == 1.0 in float32
            cell.unit.M_hat.fill_(20.0)
    x = integer_sequence(4, 1000)
    outputs, final = run_cell(cell, x)
    expected = torch.cumsum(x.double(), dim=1).float()
    assert outputs.shape == (4, 1000, 1)
    assert torch.equal(outputs, expected)
    assert torch.equal(final, expected[:, -1])
    assert expected.abs().max() > 20  # the sum really leaves the per-step input range


def test_gradient_flows_back_through_time():
    cell = build_cell("nau", 1, 1)
    with torch.no_grad():
        cell.unit.W.copy_(torch.tensor([[1.0, 0.5]]))  # h_t = x_t + 0.5 h_{t-1}
    x = torch.ones(1, 4, 1, requires_grad=True)
    outputs, _ = run_cell(cell, x)
    outputs[:, -1].sum().backward()
    # d h_3 / d x_t = 0.5 ** (3 - t)
    assert torch.equal(x.grad.flatten(), torch.tensor([0.125, 0.25, 0.5, 1.0]))


def test_unit_cell_running_product_needs_a_unit_initial_state():
    x = torch.tensor([[2.0, -1.0, 3.0, 0.5, -2.0]]).unsqueeze(-1)
    cell = build_cell("nmu", 1, 1, initial_value=1.0)
    with torch.no_grad():
        cell.unit.W.fill_(1.0)  # h_t = x_t * h_{t-1}
    outputs, _ = run_cell(cell, x)
    assert torch.equal(outputs, torch.cumprod(x, dim=1))
    zero_start = build_cell("nmu", 1, 1)  # default initial_value=0.0: every product is 0
    with torch.no_grad():
        zero_start.unit.W.fill_(1.0)
    outputs, _ = run_cell(zero_start, x)
    assert torch.equal(outputs, torch.zeros_like(x))


def test_unit_cell_builds_its_unit_over_input_and_hidden():
    cell = build_cell("nalu", 3, 5, gate="scalar")
    assert cell.unit.in_features == 8 and cell.unit.out_features == 5
    assert cell.unit.gate == "scalar"
    state = cell.initial_state(2)
    assert torch.equal(state, torch.zeros(2, 5))
    h, new_state = cell(torch.randn(2, 3), state)
    assert h.shape == (2, 5) and new_state is h


@pytest.mark.parametrize("name", CELL_NAMES)
def test_run_cell_shapes_and_finite_gradients(name):
    cell = build_cell(name, 3, 4)
    assert isinstance(cell, RecurrentCell) and cell.hidden_size == 4
    x = torch.randn(2, 6, 3)
    outputs, final = run_cell(cell, x)
    assert outputs.shape == (2, 6, 4)
    h_final = final[0] if name == "lstm" else final
    assert h_final.shape == (2, 4)
    assert torch.equal(outputs[:, -1], h_final)
    (outputs.pow(2).mean() + cell.regularizer()).backward()
    grads = [p.grad for p in cell.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert cell.sparsity_error().shape == ()


@pytest.mark.parametrize("name", CLASSIC)
def test_classic_cells_wrap_torch_cells(name):
    cell = build_cell(name, 3, 4)
    expected_type = {"lstm": LSTMCell, "gru": GRUCell, "rnn_tanh": RNNCell, "rnn_relu": RNNCell}[name]
    assert isinstance(cell, expected_type)
    x = torch.randn(5, 7, 3) * 3
    outputs, final = run_cell(cell, x)
    # compare with the corresponding torch.nn sequence module sharing the weights
    seq_cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(name, torch.nn.RNN)
    kwargs = {"nonlinearity": name.split("_")[1]} if name.startswith("rnn") else {}
    seq = seq_cls(3, 4, batch_first=True, **kwargs)
    with torch.no_grad():
        seq.weight_ih_l0.copy_(cell.cell.weight_ih)
        seq.weight_hh_l0.copy_(cell.cell.weight_hh)
        seq.bias_ih_l0.copy_(cell.cell.bias_ih)
        seq.bias_hh_l0.copy_(cell.cell.bias_hh)
    ref, _ = seq(x)
    torch.testing.assert_close(outputs, ref)
    if name == "rnn_relu":
        assert outputs.min() >= 0 and outputs.max() > 1  # relu, not tanh
    if name == "rnn_tanh":
        assert outputs.abs().max() < 1
    assert cell.regularizer().item() == 0.0
    if name == "lstm":
        h, c = final
        assert h.shape == c.shape == (5, 4)


@pytest.mark.parametrize("name", ["lstm", "gru", "nau", "nmu"])
def test_run_cell_continues_from_a_given_state(name):
    cell = build_cell(name, 2, 3)
    x = torch.randn(2, 10, 2)
    full, full_state = run_cell(cell, x)
    first, mid_state = run_cell(cell, x[:, :4])
    second, end_state = run_cell(cell, x[:, 4:], mid_state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), full)
    if name == "lstm":
        torch.testing.assert_close(end_state[1], full_state[1])


def test_cell_hooks_delegate_to_the_unit():
    cell = build_cell("nau", 1, 2)
    with torch.no_grad():
        cell.unit.W.copy_(torch.tensor([[2.0, 0.5, -3.0], [1.0, 0.0, -1.0]]))
    assert cell.regularizer().item() == pytest.approx(cell.unit.regularizer().item())
    assert cell.regularizer().item() > 0
    assert cell.sparsity_error().item() == pytest.approx(0.5)
    cell.project_()
    assert torch.equal(cell.unit.W, torch.tensor([[1.0, 0.5, -1.0], [1.0, 0.0, -1.0]]))
    nmu_cell = build_cell("nmu", 1, 1)
    with torch.no_grad():
        nmu_cell.unit.W.fill_(3.0)
    nmu_cell.project_()
    assert isinstance(nmu_cell.unit, NMU) and torch.equal(nmu_cell.unit.W, torch.ones(1, 2))


def test_registry_covers_classic_cells_and_every_unit():
    assert set(CELL_NAMES) == set(CLASSIC) | set(UNIT_NAMES) == set(CELLS)
    for name in UNIT_NAMES:
        cell = build_cell(name, 2, 3)
        assert isinstance(cell, UnitCell)
        assert type(cell.unit) is type(build_unit(name, 5, 3))


def test_build_cell_errors():
    with pytest.raises(ValueError, match="unknown cell 'transformer'") as excinfo:
        build_cell("transformer", 2, 3)
    assert all(name in str(excinfo.value) for name in CELL_NAMES)
    with pytest.raises(TypeError, match="cell 'lstm' got an unexpected option 'foo'"):
        build_cell("lstm", 2, 3, foo=1)
    with pytest.raises(TypeError, match="unit 'nau' got an unexpected option 'foo'"):
        build_cell("nau", 2, 3, foo=1)
    with pytest.raises(TypeError, match="unexpected option 'unit'"):
        build_cell("nau", 2, 3, unit="nmu")
    with pytest.raises(ValueError, match="nonlinearity"):
        RNNCell(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"\(batch, time, features\)"):
        run_cell(build_cell("gru", 2, 3), torch.randn(4, 2))


def test_run_cell_with_zero_steps():
    cell = build_cell("gru", 2, 3)
    outputs, state = run_cell(cell, torch.randn(4, 0, 2))
    assert outputs.shape == (4, 0, 3) and torch.equal(state, torch.zeros(4, 3))
