"""Tests for the arithmetic units in ``nalu_suite.units``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from nalu_suite.units import (
    GNALU,
    INALU,
    NALU,
    NAU,
    NMRU,
    NMU,
    NPU,
    NRU,
    UNIT_NAMES,
    UNITS,
    Dense,
    NACAdd,
    NACMul,
    RealNPU,
    build_unit,
    unit_options,
)
from nalu_suite.units._numerics import (
    MAX_EXPONENT,
    bounded_prod,
    linear,
    nac_init_range,
    nac_weight_variance,
)
from nalu_suite.units.linear import ACTIVATIONS

# every registered unit, plus the non-default NALU variants
UNIT_CONFIGS: list[tuple[str, dict]] = [(name, {}) for name in UNIT_NAMES] + [
    ("nalu", {"shared_weights": False}),
    ("nalu", {"gate": "scalar"}),
    ("nalu", {"shared_weights": False, "gate": "scalar"}),
    ("gnalu", {"shared_weights": False, "gate": "scalar"}),
    ("nmru", {"sign_retrieval": False}),
]
CONFIG_IDS = [name + "".join(f"-{k}={v}" for k, v in opts.items()) for name, opts in UNIT_CONFIGS]

SAT = 20.0  # tanh(20) == sigmoid(20) == 1.0 exactly in float32
GATE = 40.0  # sigmoid(40) == 1.0 exactly, sigmoid(-40) ~ 4e-18


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --------------------------------------------------------------------------------------------------------
# helpers: hand-set ideal weights
# --------------------------------------------------------------------------------------------------------


def nac_raw(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw (W_hat, M_hat) with tanh(W_hat) * sigmoid(M_hat) == w exactly for w in {0, +-0.5, +-1}."""
    mag = w.abs()
    assert torch.all((mag == 0) | (mag == 0.5) | (mag == 1)), "nac_raw only handles 0, +-0.5, +-1"
    w_hat = SAT * torch.sign(w)
    m_hat = torch.where(mag == 0.5, torch.zeros_like(w), torch.full_like(w, SAT))
    return w_hat, m_hat


@torch.no_grad()
def set_ideal(unit, w, gate: float | None = None) -> None:
    """Set ``unit``'s weights to ``w`` (out x in); ``gate`` is the gate logit (+ = add path, - = mul path)."""
    w = torch.as_tensor(w, dtype=torch.float32)
    if isinstance(unit, Dense):
        unit.weight.copy_(w)
        if unit.bias is not None:
            unit.bias.zero_()
    elif isinstance(unit, (NACAdd, NACMul)):
        w_hat, m_hat = nac_raw(w)
        unit.W_hat.copy_(w_hat)
        unit.M_hat.copy_(m_hat)
    elif isinstance(unit, NALU):  # also G-NALU, whose raw values are rescaled below
        w_hat, m_hat = nac_raw(w)
        unit.W_hat.copy_(w_hat)
        unit.M_hat.copy_(m_hat)
        if not unit.shared_weights:
            unit.W_hat_mul.copy_(w_hat)
            unit.M_hat_mul.copy_(m_hat)
        g = 0.0 if gate is None else gate
        if unit.gate == "scalar":
            unit.gate_logit.fill_(g)
        else:
            # input gate: G x with G = g/|g| * SAT saturates for positive inputs >= 1 (used with positive x)
            unit.G.fill_(math.copysign(SAT, g) if g != 0 else 0.0)
        if isinstance(unit, GNALU):  # its tanh/sigmoid read the raw values through the slope ln(phi)
            for p in unit.parameters():
                p.div_(GNALU.slope)
    elif isinstance(unit, INALU):
        w_hat, m_hat = nac_raw(w)
        unit.W_hat_add.copy_(w_hat)
        unit.M_hat_add.copy_(m_hat)
        unit.W_hat_mul.copy_(w_hat)
        unit.M_hat_mul.copy_(m_hat)
        unit.gate_logit.fill_(0.0 if gate is None else gate)
    elif isinstance(unit, NMRU):  # signed w: +1 multiplies by x_i (first half), -1 divides (second half)
        unit.W.copy_(torch.cat([w.clamp_min(0.0), (-w).clamp_min(0.0)], dim=-1))
    elif isinstance(unit, (NAU, NMU, NRU)):
        unit.W.copy_(w)
    elif isinstance(unit, (NPU, RealNPU)):
        unit.W_real.copy_(w)
        if unit.W_imag is not None:
            unit.W_imag.zero_()
        unit.gate.fill_(1.0)
    else:  # pragma: no cover - a new unit needs a case here
        raise AssertionError(f"no ideal-weight setter for {type(unit).__name__}")


def ideal_matrix(name: str) -> list[list[float]]:
    """A discrete 2 x 3 weight matrix the unit can hold (NMU weights live in [0, 1])."""
    if name == "nmu":
        return [[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
    return [[1.0, -1.0, 0.0], [1.0, 1.0, 1.0]]


# --------------------------------------------------------------------------------------------------------
# 1. representability at hand-set ideal weights, far outside any training range
# --------------------------------------------------------------------------------------------------------

# op -> (weights for inputs [a, b], reference function of (a, b)); "square" feeds [a, a]
OPS = {
    "add": ([[1.0, 1.0]], lambda a, b: a + b),
    "sub": ([[1.0, -1.0]], lambda a, b: a - b),
    "mul": ([[1.0, 1.0]], lambda a, b: a * b),
    "div": ([[1.0, -1.0]], lambda a, b: a / b),
    "square": ([[1.0, 1.0]], lambda a, b: a * a),
    "sqrt": ([[0.5, 0.0]], lambda a, b: a.abs().sqrt()),
}
ADDITIVE = {"add", "sub"}

DIVISION_UNITS = [
    ("nru", {}),
    ("nru", {"sharpness": None}),
    ("nmru", {}),
    ("nmru", {"sign_retrieval": False}),
    ("realnpu_mod", {}),
]

# (unit, options, op, input domain)
REPRESENTABLE = [
    *[(u, {}, op, "signed") for u in ("linear", "nac_add", "nac", "nau") for op in ("add", "sub")],
    *[(u, {}, op, "signed") for u in ("inalu",) for op in ("add", "sub", "mul", "div", "square")],
    ("inalu", {}, "sqrt", "positive"),
    *[("nalu", {"gate": "scalar"}, op, "signed") for op in ("add", "sub")],
    # input-dependent gate: saturated by G x = +-20 (a + b) for inputs >= 1
    ("nalu", {}, "add", "positive"),
    ("nalu", {}, "mul", "at_least_one"),
    ("nalu", {}, "div", "at_least_one"),
    ("nalu", {"gate": "scalar", "shared_weights": False}, "sub", "signed"),
    ("nalu", {"gate": "scalar", "shared_weights": False}, "div", "positive"),
    *[(u, {}, op, "positive") for u in ("nac_mul",) for op in ("mul", "div", "square", "sqrt")],
    *[("nalu", {"gate": "scalar"}, op, "positive") for op in ("mul", "div", "square", "sqrt")],
    *[("nmu", {}, op, "signed") for op in ("mul", "square")],
    *[(u, {}, op, "signed") for u in ("npu", "realnpu") for op in ("mul", "div", "square")],
    *[(u, {}, "sqrt", "positive") for u in ("npu", "realnpu")],
    # the division units (Mistry et al. 2021) and the golden-ratio NALU
    *[(u, o, op, "signed") for u, o in DIVISION_UNITS for op in ("mul", "div", "square")],
    ("realnpu_mod", {}, "sqrt", "positive"),
    *[("gnalu", {"gate": "scalar"}, op, "signed") for op in ("add", "sub")],
    ("gnalu", {}, "add", "positive"),
    ("gnalu", {}, "mul", "at_least_one"),
    ("gnalu", {}, "div", "at_least_one"),
    *[("gnalu", {"gate": "scalar"}, op, "positive") for op in ("mul", "div", "square", "sqrt")],
]


def sample_inputs(op: str, domain: str, n: int = 512) -> torch.Tensor:
    if op in ADDITIVE:
        if domain == "positive":
            x = torch.empty(n, 2).uniform_(1.0, 1e5)
        else:
            x = torch.empty(n, 2).uniform_(-1e5, 1e5)
    else:  # magnitudes log-uniform in [0.1, 1e4]: products up to 1e8, quotients down to 1e-5
        x = 10 ** torch.empty(n, 2).uniform_(0.0 if domain == "at_least_one" else -1.0, 4.0)
        if domain == "signed":
            x = x * torch.where(torch.rand(n, 2) < 0.5, -1.0, 1.0)
    if op == "square":
        x[:, 1] = x[:, 0]
    return x


@pytest.mark.parametrize(
    ("name", "options", "op", "domain"),
    REPRESENTABLE,
    ids=[f"{u}-{op}-{d}{'-' + '-'.join(o) if o else ''}" for u, o, op, d in REPRESENTABLE],
)
def test_ideal_weights_compute_the_operation(name, options, op, domain):
    unit = build_unit(name, 2, 1, **options)
    weights, fn = OPS[op]
    if op == "square" and name in ("npu", "realnpu"):
        weights = [[2.0, 0.0]]  # the power unit squares with an exponent of 2
    set_ideal(unit, weights, gate=GATE if op in ADDITIVE else -GATE)
    x = sample_inputs(op, domain)
    with torch.no_grad():
        y = unit(x).squeeze(-1).double()
    x64 = x.double()
    expected = fn(x64[:, 0], x64[:, 1])
    if op in ADDITIVE:
        torch.testing.assert_close(y, expected, rtol=1e-6, atol=1e-2)  # |a|, |b| up to 1e5
    else:
        torch.testing.assert_close(y, expected, rtol=1e-4, atol=0.0)


def test_nmu_ignores_inputs_with_zero_weight_and_is_exact_for_integers():
    unit = build_unit("nmu", 4, 1)
    set_ideal(unit, [[1.0, 0.0, 1.0, 1.0]])
    x = torch.tensor([[2.0, 1e6, 3.0, -4.0], [0.0, -7.0, 5.0, 6.0], [-1.0, 0.0, -1.0, -1.0]])
    y = unit(x).squeeze(-1)
    assert torch.equal(y, torch.tensor([-24.0, 0.0, -1.0]))


def test_inalu_and_npu_products_with_zero_are_zero_or_tiny():
    inalu = build_unit("inalu", 2, 1)
    set_ideal(inalu, [[1.0, 1.0]], gate=-GATE)
    x = torch.tensor([[0.0, 123.0], [-5.0, 0.0]])
    # sign(0) = 0 makes the product exactly 0; what is left is the add path times sigmoid(-40) ~ 4e-18
    assert inalu(x).abs().max() < 1e-12
    npu = build_unit("npu", 2, 1)
    set_ideal(npu, [[1.0, 1.0]])
    assert npu(x).abs().max() < 1e-4  # eps * 123


def test_exponent_clamp_bounds_nac_mul_and_nalu_but_not_representable_products():
    for name, opts in (("nac_mul", {}), ("nalu", {"gate": "scalar"})):
        unit = build_unit(name, 3, 1, **opts)
        set_ideal(unit, [[1.0, 1.0, 1.0]], gate=-GATE)
        y = unit(torch.full((1, 3), 1e6))  # 1e18 > e**30: clamped
        assert torch.allclose(y, torch.tensor(math.exp(MAX_EXPONENT)), rtol=1e-5)
        y = unit(torch.tensor([[1e6, 1e6, 1.0]]))  # 1e12 < e**30: exact
        assert torch.allclose(y.double(), torch.tensor(1e12, dtype=torch.float64), rtol=1e-5)


def test_inalu_sign_retrieval_equals_the_papers_product_of_factors():
    """The log-space matrix form of iNALU's sign (units/inalu.py) against the product it replaces,
    on inputs with zeros and negatives and weights including the exactly-zero factors |W| = 1, 1/2."""
    from nalu_suite.units.inalu import sign_retrieval

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 6, generator=gen, dtype=torch.float64).round()  # about 40% zeros
    w = torch.rand(3, 6, generator=gen, dtype=torch.float64) * 2 - 1
    direct = lambda w: torch.prod(w.abs() * torch.sign(x).unsqueeze(-2) + 1 - w.abs(), dim=-1)  # noqa: E731
    w.requires_grad_(True)
    (expected_grad,) = torch.autograd.grad(direct(w).square().sum(), w)
    got = sign_retrieval(x, w)
    (got_grad,) = torch.autograd.grad(got.square().sum(), w)
    assert torch.allclose(got, direct(w), rtol=1e-12, atol=1e-14)
    assert torch.allclose(got_grad, expected_grad, rtol=1e-10, atol=1e-12)
    assert (got < 0).any() and (got > 0).any()  # signs of both kinds occur
    with torch.no_grad():
        w[0, 0], w[1, 1] = 1.0, -0.5  # a zero factor where x_0 = 0, and where x_1 < 0
    exact_zero = (x[:, 0] == 0, x[:, 1] < 0)
    assert exact_zero[0].any() and exact_zero[1].any()
    got = sign_retrieval(x, w.detach())
    assert torch.equal(got[exact_zero[0], 0], torch.zeros(int(exact_zero[0].sum()), dtype=x.dtype))
    assert torch.equal(got[exact_zero[1], 1], torch.zeros(int(exact_zero[1].sum()), dtype=x.dtype))
    assert torch.allclose(got, direct(w.detach()), rtol=1e-12, atol=1e-14)
    positive = torch.rand(5, 6, generator=gen) + 0.1
    assert torch.equal(sign_retrieval(positive, w.float()), torch.ones(5, 3))  # exactly 1, not 1 +- ulp


@pytest.mark.parametrize("name", ["inalu", "npu", "realnpu", "realnpu_mod"])
def test_units_on_inputs_known_positive_skip_their_sign_terms_with_the_same_values_and_gradients(name):
    """``positive_inputs`` leaves out iNALU's sign retrieval (exactly 1 on positive inputs) and the NPUs'
    ``k = pi g [x < 0]`` products (exact zeros): output and every gradient equal the full computation's
    bit for bit."""
    x = torch.rand(32, 5, generator=torch.Generator().manual_seed(1)) + 0.5
    results = []
    for positive in (False, True):
        torch.manual_seed(0)
        unit = build_unit(name, 5, 3)
        with torch.no_grad():
            for p in unit.parameters():  # away from initial values with zero gradients (NPU's W_imag = 0)
                p.add_(0.1 * torch.randn_like(p))
        unit.positive_inputs = positive
        y = unit(x)
        grads = torch.autograd.grad(y.square().sum(), list(unit.parameters()))
        results.append((y, grads))
    (y_full, grads_full), (y_skip, grads_skip) = results
    assert torch.equal(y_skip, y_full)
    assert all(torch.equal(a, b) for a, b in zip(grads_skip, grads_full, strict=True))
    assert all(g.abs().sum() > 0 for g in grads_full)  # every parameter has a gradient to compare
    signed = x.clone()
    signed[:, 0] *= -1  # where the promise is broken, the sign is what goes missing
    with torch.no_grad():
        skipped = unit(signed)
        unit.positive_inputs = False
        assert not torch.allclose(unit(signed), skipped)


def test_realnpu_without_gate_and_sign_is_a_plain_power_of_magnitudes():
    gated = build_unit("realnpu", 2, 1)
    plain = build_unit("realnpu", 2, 1, gated=False, signed=False)
    assert "gate" not in dict(plain.named_parameters()) and "gate" in dict(gated.named_parameters())
    with torch.no_grad():
        plain.W_real.copy_(torch.tensor([[0.5, -1.0]]))
    x = torch.tensor([[16.0, 2.0], [-16.0, -2.0], [9.0, 0.5]])
    assert torch.allclose(plain(x).squeeze(-1), torch.tensor([2.0, 2.0, 6.0]), rtol=1e-5)
    signed = build_unit("realnpu", 2, 1, gated=False)  # keeps the sign term: sqrt(-16) has real part 0
    with torch.no_grad():
        signed.W_real.copy_(torch.tensor([[0.5, 0.0]]))
    assert signed(x[1:2]).abs().item() < 1e-6 and signed(x[:1]).item() == pytest.approx(4.0, rel=1e-5)
    plain.project_()  # no gate to clamp


def test_inalu_uses_the_published_omega_clip():
    unit = build_unit("inalu", 2, 1)
    set_ideal(unit, [[1.0, 1.0]], gate=-GATE)
    y = unit(torch.tensor([[1e5, 1e5]]))  # 1e10 > e**20
    assert torch.allclose(y, torch.tensor(math.exp(20.0)), rtol=1e-5)


def test_nac_add_path_is_exact_for_mixed_signs_with_three_inputs():
    unit = build_unit("nac_add", 3, 2)
    set_ideal(unit, [[1.0, -1.0, 0.0], [0.5, 0.0, 1.0]])
    x = torch.tensor([[3.0, 5.0, 7.0], [-1e5, 2.0, 4.0]])
    assert torch.equal(unit(x), torch.tensor([[-2.0, 8.5], [-100002.0, -49996.0]]))


# --------------------------------------------------------------------------------------------------------
# 2. gradients reach every raw parameter
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "options"), UNIT_CONFIGS, ids=CONFIG_IDS)
def test_one_optimizer_step_changes_every_parameter(name, options):
    unit = build_unit(name, 4, 3, **options)
    x = torch.randn(32, 4) * 3  # includes negatives (NPU's imaginary weight needs them)
    target = torch.randn(32, 3)
    before = {n: p.detach().clone() for n, p in unit.named_parameters()}
    assert before, "every unit has parameters"
    opt = torch.optim.Adam(unit.parameters(), lr=1e-2)
    loss = F.mse_loss(unit(x), target) + unit.regularizer()
    loss.backward()
    for n, p in unit.named_parameters():
        assert p.grad is not None, n
        assert torch.isfinite(p.grad).all(), n
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient for {n}"
    opt.step()
    unit.project_()
    for n, p in unit.named_parameters():
        assert not torch.equal(before[n], p.detach()), f"{name}: parameter {n} did not change"


def test_regularizers_have_gradients():
    for name in ("nau", "nmu", "inalu", "npu", "realnpu", "nru", "nmru", "realnpu_mod"):
        unit = build_unit(name, 3, 2)
        unit.regularizer().backward()
        grads = [p.grad for p in unit.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), name


# --------------------------------------------------------------------------------------------------------
# 3. finite forward and backward everywhere
# --------------------------------------------------------------------------------------------------------

SPECIAL = [0.0, -0.0, 1e-45, -1e-45, 1e-7, -1e-7, 1.0, -1.0, 123.5, -3.75, 1e6, -1e6]


def make_unit(name: str, options: dict, ideal: bool, in_features: int = 3):
    unit = build_unit(name, in_features, 2, **options)
    if ideal:
        set_ideal(unit, ideal_matrix(name), gate=0.0)
    return unit


def assert_finite_forward_backward(unit, x: torch.Tensor) -> None:
    x = x.clone().requires_grad_(True)
    y = unit(x)
    assert torch.isfinite(y).all(), f"non-finite output for x={x.tolist()}"
    (y.pow(2).mean() + y.sum()).backward()
    for n, p in unit.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"non-finite grad of {n}"
    assert torch.isfinite(x.grad).all(), f"non-finite input grad for x={x.tolist()}"


@pytest.mark.parametrize("ideal", [False, True], ids=["init", "ideal"])
@pytest.mark.parametrize(("name", "options"), UNIT_CONFIGS, ids=CONFIG_IDS)
def test_finite_on_a_grid_of_extreme_inputs(name, options, ideal):
    values = torch.tensor(SPECIAL)
    x = torch.cartesian_prod(values, values, values)  # every combination, (1728, 3)
    assert_finite_forward_backward(make_unit(name, options, ideal), x)


finite_floats = st.one_of(
    st.sampled_from(SPECIAL), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32)
)


@pytest.mark.parametrize("ideal", [False, True], ids=["init", "ideal"])
@pytest.mark.parametrize(("name", "options"), UNIT_CONFIGS, ids=CONFIG_IDS)
@settings(max_examples=25, deadline=None)
@given(values=st.lists(finite_floats, min_size=12, max_size=12))
def test_finite_forward_backward_hypothesis(name, options, ideal, values):
    x = torch.tensor(values, dtype=torch.float32).reshape(4, 3)
    assert_finite_forward_backward(make_unit(name, options, ideal), x)


def test_nac_mul_and_nalu_log_gradient_at_zero_is_finite():
    for name in ("nac_mul", "nalu"):
        unit = build_unit(name, 2, 1)
        set_ideal(unit, [[1.0, -1.0]], gate=-GATE)
        x = torch.tensor([[0.0, 2.0], [3.0, 0.0]], requires_grad=True)
        unit(x).sum().backward()
        assert torch.isfinite(x.grad).all(), name
        # d|x|/dx = sign(0) = 0; NALU's add path still contributes sigmoid(-40) * W ~ 4e-18
        assert x.grad[0, 0].abs() < 1e-12 and x.grad[1, 1].abs() < 1e-12, name


def test_nmu_survives_one_hundred_inputs_of_a_million():
    unit = build_unit("nmu", 100, 1)
    with torch.no_grad():
        unit.W.fill_(1.0)
    x = torch.full((2, 100), 1e6, requires_grad=True)
    y = unit(x)
    assert torch.isfinite(y).all() and torch.allclose(y, torch.tensor(math.exp(MAX_EXPONENT)), rtol=1e-5)
    y.pow(2).mean().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(unit.W.grad).all()


# --------------------------------------------------------------------------------------------------------
# the bounded product behind the NMU
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_zeros", [0, 1, 2])
def test_bounded_prod_matches_torch_prod_and_its_gradient(n_zeros):
    f = torch.randn(64, 6, dtype=torch.float64) * 2
    f[:, :n_zeros] = 0.0
    f1 = f.clone().requires_grad_(True)
    f2 = f.clone().requires_grad_(True)
    y1 = bounded_prod(f1)
    y2 = torch.prod(f2, dim=-1)
    torch.testing.assert_close(y1, y2)
    w = torch.randn(64, dtype=torch.float64)
    (y1 * w).sum().backward()
    (y2 * w).sum().backward()
    torch.testing.assert_close(f1.grad, f2.grad)


def test_bounded_prod_gradcheck_with_zero_factors():
    f = torch.randn(5, 4, dtype=torch.float64)
    f[1, 2] = 0.0
    f[3, :2] = 0.0
    assert torch.autograd.gradcheck(bounded_prod, (f.requires_grad_(True),))


def test_bounded_prod_clamps_magnitude_keeps_sign_and_zeroes_saturated_gradient():
    f = torch.tensor([[1e6, 1e6, -1e6], [1e20, 1e20, 0.0]], requires_grad=True)
    y = bounded_prod(f)
    assert torch.allclose(y, torch.tensor([-math.exp(MAX_EXPONENT), 0.0]), rtol=1e-5)
    y.sum().backward()
    assert torch.isfinite(f.grad).all()
    assert torch.equal(f.grad[0], torch.zeros(3))  # clamped (saturated) forward: zero gradient
    assert f.grad[1, 2] == pytest.approx(math.exp(MAX_EXPONENT), rel=1e-5)  # bounded exclusive product
    assert torch.equal(f.grad[1, :2], torch.zeros(2))  # the zero factor makes the others irrelevant


# --------------------------------------------------------------------------------------------------------
# 4. sparsity error and regularisers
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "options"), UNIT_CONFIGS, ids=CONFIG_IDS)
def test_sparsity_error_is_zero_at_ideal_weights_and_positive_at_init(name, options):
    unit = make_unit(name, options, ideal=False)
    assert unit.sparsity_error() > 0.01
    set_ideal(unit, ideal_matrix(name), gate=0.0)
    assert unit.sparsity_error() == pytest.approx(0.0, abs=1e-6)


def test_sparsity_error_hand_computed_values():
    nau = NAU(2, 2)
    with torch.no_grad():
        nau.W.copy_(torch.tensor([[0.5, 1.0], [0.2, -0.9]]))
    # min(|w|, |1 - |w||) = [[0.5, 0], [0.2, 0.1]] -> max 0.5
    assert nau.sparsity_error().item() == pytest.approx(0.5)
    with torch.no_grad():
        nau.W.copy_(torch.tensor([[0.3, -1.0], [0.0, 0.9]]))
    assert nau.sparsity_error().item() == pytest.approx(0.3)

    nmu = NMU(3, 1)
    with torch.no_grad():
        nmu.W.copy_(torch.tensor([[0.25, 1.0, 0.85]]))
    assert nmu.sparsity_error().item() == pytest.approx(0.25)

    nac = NACAdd(2, 1)
    with torch.no_grad():
        nac.W_hat.fill_(SAT)
        nac.M_hat.copy_(torch.tensor([[0.0, SAT]]))  # W = [[0.5, 1.0]]
    assert nac.sparsity_error().item() == pytest.approx(0.5)

    inalu = INALU(2, 1)
    set_ideal(inalu, [[1.0, 0.0]])
    with torch.no_grad():
        inalu.M_hat_mul.fill_(0.0)  # W_mul = [[0.5, 0]]: max over both matrices is 0.5
    assert inalu.sparsity_error().item() == pytest.approx(0.5)

    npu = NPU(2, 1)
    with torch.no_grad():
        npu.W_real.copy_(torch.tensor([[1.0, 2.0]]))  # min(2, |1 - 2|) = 1
        npu.W_imag.copy_(torch.tensor([[0.0, 0.1]]))
    assert npu.sparsity_error().item() == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["npu", "realnpu"])
def test_the_npu_l1_is_a_mean_over_the_weights_or_the_primers_sum_over_all_parameters(name):
    mean, summed = (build_unit(name, 3, 2, l1_reduction=r) for r in ("mean", "sum"))
    summed.load_state_dict(mean.state_dict())
    with torch.no_grad():
        mean.W_real.copy_(torch.tensor([[1.0, -2.0, 0.0], [0.5, 0.0, -0.5]]))
        summed.W_real.copy_(mean.W_real)
        mean.gate.copy_(torch.tensor([0.25, 1.0, 0.0]))
        summed.gate.copy_(mean.gate)
    weights = 4.0  # sum |W_real|; W_imag (the NPU's) starts at 0
    entries = 6 if name == "realnpu" else 12
    assert mean.regularizer().item() == pytest.approx(weights / entries)
    assert summed.regularizer().item() == pytest.approx(weights + 1.25)  # the gate counts in the sum
    with pytest.raises(ValueError, match="l1_reduction='max'; choose from: mean, sum"):
        build_unit(name, 3, 2, l1_reduction="max")


def test_units_without_regulariser_return_zero():
    for name in UNIT_NAMES:
        if name in ("nau", "nmu", "inalu", "npu", "realnpu", "nru", "nmru", "realnpu_mod"):
            continue
        reg = build_unit(name, 3, 2).regularizer()
        assert reg.shape == () and reg.item() == 0.0, name


def test_nau_and_nmu_regularisers():
    nau = NAU(2, 1)
    with torch.no_grad():
        nau.W.copy_(torch.tensor([[0.5, 1.0]]))
    assert nau.regularizer().item() == pytest.approx(0.25)  # mean(0.5, 0)
    with torch.no_grad():
        nau.W.copy_(torch.tensor([[1.0, -1.0]]))
    assert nau.regularizer().item() == 0.0
    nmu = NMU(4, 1)
    with torch.no_grad():
        nmu.W.copy_(torch.tensor([[0.25, 1.0, 0.0, 0.5]]))
    assert nmu.regularizer().item() == pytest.approx(0.1875)  # (0.25 + 0 + 0 + 0.5) / 4
    with torch.no_grad():
        nmu.W.copy_(torch.tensor([[0.0, 1.0, 1.0, 0.0]]))
    assert nmu.regularizer().item() == 0.0


def test_inalu_regulariser_pushes_raw_weights_past_the_threshold():
    unit = INALU(2, 1)
    params = (unit.W_hat_add, unit.M_hat_add, unit.W_hat_mul, unit.M_hat_mul)
    with torch.no_grad():
        for p in params:
            p.fill_(0.0)
    assert unit.regularizer().item() == pytest.approx(1.0)
    with torch.no_grad():
        for p in params:
            p.fill_(-10.0)
    assert unit.regularizer().item() == pytest.approx(0.5)  # (20 - 10) / 20
    with torch.no_grad():
        for p in params:
            p.copy_(torch.tensor([[20.0, -25.0]]))
    assert unit.regularizer().item() == 0.0


def test_npu_regulariser_is_mean_l1():
    npu = NPU(2, 1)
    with torch.no_grad():
        npu.W_real.copy_(torch.tensor([[1.0, -2.0]]))
        npu.W_imag.copy_(torch.tensor([[0.0, 1.0]]))
    assert npu.regularizer().item() == pytest.approx(1.0)  # (1 + 2 + 0 + 1) / 4
    real = RealNPU(2, 1)
    with torch.no_grad():
        real.W_real.copy_(torch.tensor([[1.0, -2.0]]))
    assert real.regularizer().item() == pytest.approx(1.5)


# --------------------------------------------------------------------------------------------------------
# 5. projections and initialisation
# --------------------------------------------------------------------------------------------------------


def test_project_clamps_nau_nmu_and_npu_gate():
    nau = NAU(3, 1)
    nmu = NMU(3, 1)
    npu = NPU(3, 1)
    with torch.no_grad():
        nau.W.copy_(torch.tensor([[2.0, -3.0, 0.5]]))
        nmu.W.copy_(torch.tensor([[-0.5, 1.5, 0.3]]))
        npu.gate.copy_(torch.tensor([-1.0, 2.0, 0.3]))
    # the forward already uses the clamped weights
    assert torch.equal(nau(torch.tensor([[1.0, 1.0, 2.0]])), torch.tensor([[1.0]]))
    nau.project_()
    nmu.project_()
    npu.project_()
    assert torch.equal(nau.W, torch.tensor([[1.0, -1.0, 0.5]]))
    assert torch.equal(nmu.W, torch.tensor([[0.0, 1.0, 0.3]]))
    assert torch.equal(npu.gate, torch.tensor([0.0, 1.0, 0.3]))


def test_project_is_a_noop_for_unconstrained_units():
    for name in ("nac_add", "nac_mul", "nalu", "gnalu", "inalu", "linear", "relu6"):
        unit = build_unit(name, 3, 2)
        with torch.no_grad():
            for p in unit.parameters():
                p.mul_(5.0)
        before = [p.clone() for p in unit.parameters()]
        unit.project_()
        assert all(torch.equal(a, b) for a, b in zip(before, unit.parameters(), strict=True)), name


def test_nac_weight_variance_formula_matches_monte_carlo():
    g = torch.Generator().manual_seed(1)
    for r in (0.3, 1.5, 4.0):
        u = (torch.rand(2_000_000, generator=g, dtype=torch.float64) * 2 - 1) * r
        v = (torch.rand(2_000_000, generator=g, dtype=torch.float64) * 2 - 1) * r
        empirical = (torch.tanh(u) * torch.sigmoid(v)).var().item()
        assert empirical == pytest.approx(nac_weight_variance(r), rel=0.01)


def test_nac_init_matches_glorot_variance():
    for fan_in, fan_out in ((100, 1), (10, 10), (2, 1)):
        r = nac_init_range(fan_in, fan_out)
        assert nac_weight_variance(r) == pytest.approx(min(2 / (fan_in + fan_out), 0.4), rel=1e-6)
    unit = NACAdd(200, 100)
    assert unit.weight.var().item() == pytest.approx(2 / 300, rel=0.05)


def test_initialisations():
    nau = NAU(2, 1)  # sqrt(3) * sqrt(2/3) > 0.5: capped
    assert nau.W.abs().max() <= 0.5
    big = NAU(100, 100)
    r = math.sqrt(3) * math.sqrt(2 / 200)
    assert big.W.abs().max() <= r and big.W.abs().max() > 0.9 * r
    nmu = NMU(50, 50)
    assert nmu.W.min() >= 0.25 and nmu.W.max() <= 0.75
    inalu = INALU(100, 100)
    assert inalu.W_hat_add.mean().item() == pytest.approx(0.88, abs=0.01)
    assert inalu.M_hat_mul.mean().item() == pytest.approx(0.5, abs=0.01)
    assert inalu.W_hat_mul.std().item() == pytest.approx(0.2, abs=0.01)
    npu = NPU(50, 40)
    bound = math.sqrt(6 / 90)
    assert npu.W_real.abs().max() <= bound and torch.equal(npu.W_imag, torch.zeros(40, 50))
    assert torch.equal(npu.gate, torch.full((50,), 0.5))


# --------------------------------------------------------------------------------------------------------
# 6. registry and build_unit
# --------------------------------------------------------------------------------------------------------


def test_registry_names():
    expected = {"linear", "relu6", "relu", "tanh", "sigmoid", "softsign", "selu", "elu"}
    expected |= {"nac_add", "nac", "nac_mul", "nalu", "inalu", "nau", "nmu", "npu", "realnpu"}
    expected |= {"gnalu", "nru", "nmru", "realnpu_mod"}
    assert set(UNIT_NAMES) == expected == set(UNITS)
    assert UNITS["nac"] is UNITS["nac_add"] is NACAdd
    for name in UNIT_NAMES:
        unit = build_unit(name, 3, 2)
        assert isinstance(unit, UNITS[name])
        assert (unit.in_features, unit.out_features) == (3, 2)


def test_build_unit_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown unit 'nalu2'") as excinfo:
        build_unit("nalu2", 2, 1)
    message = str(excinfo.value)
    assert all(name in message for name in UNIT_NAMES)
    assert ", ".join(sorted(UNIT_NAMES)) in message


@pytest.mark.parametrize("name", UNIT_NAMES)
def test_build_unit_unknown_option_is_named(name):
    with pytest.raises(TypeError, match=f"unit '{name}' got an unexpected option 'foo'"):
        build_unit(name, 2, 1, foo=1)


def test_build_unit_passes_valid_options_and_rejects_bad_values():
    unit = build_unit("nalu", 2, 1, shared_weights=False, gate="scalar", eps=1e-6)
    assert unit.W_hat_mul is not None and unit.gate_logit.shape == (1,) and unit.eps == 1e-6
    assert "gate" in unit_options("nalu") and unit_options("nau") == ("init", "grad_at_bounds")
    with pytest.raises(ValueError, match="unknown gate 'foo'"):
        build_unit("nalu", 2, 1, gate="foo")
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        Dense(2, 1, activation="swish")
    with pytest.raises(TypeError, match="unexpected option 'activation'"):
        build_unit("relu", 2, 1, activation="tanh")
    assert build_unit("linear", 2, 1, bias=False).bias is None
    with pytest.raises(ValueError, match="in_features and out_features must be >= 1"):
        build_unit("nau", 0, 1)


@pytest.mark.parametrize("shape", [(5,), (16, 5), (4, 16, 5)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_linear_is_f_linear_in_the_layout_vmap_runs_fastest(shape, with_bias):
    torch.manual_seed(0)
    x, weight, bias = torch.randn(shape), torch.randn(3, 5), torch.randn(3) if with_bias else None
    out = linear(x, weight, bias)
    assert out.shape == (*shape[:-1], 3)
    assert torch.allclose(out, F.linear(x, weight, bias), atol=1e-6)
    stacked = torch.randn(4, 3, 5)  # under vmap (replicas): a batched matmul, the same values per replica
    batched = torch.func.vmap(lambda w: linear(x, w, bias))(stacked)
    for k in range(4):
        assert torch.allclose(batched[k], linear(x, stacked[k], bias), atol=1e-6)


@pytest.mark.parametrize("name", [n for n in UNIT_NAMES if n in ACTIVATIONS or n == "linear"])
def test_dense_baselines_apply_their_activation(name):
    unit = build_unit(name, 3, 4)
    x = torch.randn(16, 3) * 4
    expected = ACTIVATIONS[name](linear(x, unit.weight, unit.bias))
    assert torch.equal(unit(x), expected)
    if name != "linear":
        assert not torch.allclose(unit(x), F.linear(x, unit.weight, unit.bias))


# --------------------------------------------------------------------------------------------------------
# leading batch shapes
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "options"), UNIT_CONFIGS, ids=CONFIG_IDS)
def test_any_leading_batch_shape(name, options):
    unit = build_unit(name, 5, 3, **options)
    x = torch.randn(2, 3, 4, 5) * 2
    y = unit(x)
    assert y.shape == (2, 3, 4, 3)
    torch.testing.assert_close(y.reshape(-1, 3), unit(x.reshape(-1, 5)))
    assert unit(x[0, 0, 0]).shape == (3,)
    torch.testing.assert_close(unit(x[0, 0, 0]), y[0, 0, 0])


def test_stochastic_nmu_noise_cancels_exactly_for_discrete_weights_only():
    torch.manual_seed(0)
    x = torch.rand(64, 3) * 4 + 1
    snmu = build_unit("nmu", 3, 1, noise=[1, 5])
    with torch.no_grad():
        snmu.W.copy_(torch.tensor([[1.0, 0.0, 1.0]]))
    exact = (x[:, 0] * x[:, 2]).unsqueeze(-1)
    assert torch.allclose(snmu.train()(x), exact, rtol=1e-5)  # noise n0 * n2 divided out again
    with torch.no_grad():
        snmu.W.fill_(0.5)
    plain = build_unit("nmu", 3, 1)
    with torch.no_grad():
        plain.W.fill_(0.5)
    assert not torch.allclose(snmu.train()(x), plain(x), rtol=1e-3)  # fractional weights: noise shows
    assert torch.equal(snmu.eval()(x), plain(x))  # evaluation has no noise
    with pytest.raises(ValueError, match="noise"):
        build_unit("nmu", 3, 1, noise=[0, 5])


@pytest.mark.parametrize("name, options", [("nmu", {}), ("nmu", {"noise": [1, 5]}), ("nmru", {})])
def test_nmu_init_range_draws_the_weights_there_and_the_default_is_the_papers(name, options):
    """``init_range=[lo, hi]`` (project option): ``W ~ U[lo, hi]`` for the NMU, the sNMU and the NMRU;
    the default is the published U[0.25, 0.75]; the same seed draws the same weights within the range."""
    torch.manual_seed(0)
    default = build_unit(name, 50, 4, **options).W
    torch.manual_seed(0)
    small = build_unit(name, 50, 4, init_range=[0.0, 0.1], **options).W
    assert float(default.min()) >= 0.25 and float(default.max()) <= 0.75 and float(default.max()) > 0.7
    assert float(small.min()) >= 0.0 and float(small.max()) <= 0.1 and float(small.max()) > 0.09
    torch.testing.assert_close(small, (default - 0.25) / 5)  # one uniform draw, rescaled
    assert "init_range=[0.0, 0.1]" in repr(build_unit(name, 2, 1, init_range=[0.0, 0.1]))
    for bad in ([0.5, 0.25], [-0.1, 0.5], [0.2, 1.5], [0.5]):
        with pytest.raises(ValueError, match="init_range"):
            build_unit(name, 2, 1, init_range=bad)


def test_nau_split_init_starts_every_input_different_in_the_two_units():
    """``init="split"``: row 0 is +-r with random signs, the other rows 0, so every input's weights
    differ between the units (symmetry breaking for the static task's sparse ``add``)."""
    from nalu_suite.units import NAU

    torch.manual_seed(0)
    unit = NAU(100, 2, init="split")
    r = min(0.5, math.sqrt(3.0) * math.sqrt(2.0 / 102))
    assert torch.equal(unit.W[0].abs(), torch.full((100,), r))
    assert 30 < int((unit.W[0] > 0).sum()) < 70  # random signs
    assert torch.equal(unit.W[1], torch.zeros(100))
    torch.manual_seed(0)
    assert not torch.equal(NAU(100, 2).W, unit.W)  # the default init is untouched
    with pytest.raises(ValueError, match="init='splat' is not valid; choose one of: uniform, split"):
        NAU(4, 2, init="splat")
    with pytest.raises(ValueError, match="needs at least 2 outputs"):
        NAU(4, 1, init="split")
