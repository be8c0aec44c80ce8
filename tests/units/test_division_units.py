"""The division units of Mistry, Li, Zhang & Hare 2021 (NRU, NMRU, modified RealNPU) and the golden-ratio
NALU: their equations against hand computations, clamps, regularisers, and ``vmap`` over stacked replicas.

The shared checks (representability of the ops, gradients to every parameter, finite forward/backward under
hypothesis, sparsity error, leading batch shapes) run on them from ``test_units.py`` through the registry.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch

from nalu_suite.replicas.model import StackedModel
from nalu_suite.units import GNALU, NALU, NMRU, NRU, ModifiedRealNPU, RealNPU, build_unit
from nalu_suite.units._numerics import MAX_EXPONENT, box
from nalu_suite.units.gnalu import LN_PHI, PHI
from nalu_suite.units.npu import NPU_EPS

EPS = NPU_EPS


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def set_w(unit, w) -> None:
    with torch.no_grad():
        unit.W.copy_(torch.as_tensor(w, dtype=torch.float32))


# --------------------------------------------------------------------------------------------------------
# NRU
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_nru_divides_and_multiplies_far_outside_any_training_range(mode):
    unit = build_unit("nru", 3, 3)
    unit.train(mode == "train")
    set_w(unit, [[1.0, -1.0, 0.0], [-1.0, -1.0, 1.0], [0.0, 0.0, 0.0]])
    x = torch.tensor([[1e6, -3e-3, 7.0], [-2.5e5, 4e2, -1e-4], [0.5, 0.25, 123.0]], dtype=torch.float64)
    y = unit(x.float()).double()
    a, b, c = x.unbind(-1)
    expected = torch.stack([a / b, c / (a * b), torch.ones_like(a)], dim=-1)
    torch.testing.assert_close(y, expected, rtol=1e-6, atol=0.0)


def test_nru_factor_is_the_papers_with_a_smooth_abs_in_training_only():
    unit = build_unit("nru", 2, 1)
    w = torch.tensor([[0.5, -0.002]])
    set_w(unit, w)
    x = torch.tensor([[4.0, -9.0]])

    def expected(a):
        f = torch.sign(x) * x.abs() ** w * a + 1 - a
        return f.prod(-1, keepdim=True)

    torch.testing.assert_close(unit.train()(x), expected(torch.tanh(1000 * w) ** 2))
    torch.testing.assert_close(unit.eval()(x), expected(w.abs()))
    smooth_free = build_unit("nru", 2, 1, sharpness=None)
    set_w(smooth_free, w)
    torch.testing.assert_close(smooth_free.train()(x), expected(w.abs()))
    # W = 1/2: sign(x) sqrt|x| in training (A = tanh(500)^2 = 1), (sqrt|x| + 1) / 2 in evaluation
    set_w(unit, [[0.5, 0.0]])
    assert unit.train()(x).item() == pytest.approx(2.0)
    assert unit.eval()(x).item() == pytest.approx(1.5)
    with pytest.raises(ValueError, match="sharpness"):
        build_unit("nru", 2, 1, sharpness=0)


def test_nru_at_zero_and_tiny_inputs_is_finite():
    unit = build_unit("nru", 2, 3)
    set_w(unit, [[1.0, 1.0], [1.0, -1.0], [0.0, -1.0]])
    x = torch.tensor([[0.0, 5.0], [5.0, 0.0], [1e-30, 1e-30], [3.0, -1e-45]], requires_grad=True)
    y = unit(x)
    # 0 * 5 = 0; 5 / 0 -> 0 and 1 / 0 -> 0 (sign(0) = 0); |x| < eps counts as eps (either sign of W)
    assert y[0, 0] == 0 and y[1, 1] == 0 and y[1, 2] == 0 and y[0, 1] == 0
    assert y[2, 1].item() == pytest.approx(1.0) and y[2, 2].item() == pytest.approx(1 / EPS)
    assert y[3, 1].item() == pytest.approx(-3 / EPS)  # the sign of -1e-45 is kept
    (y.square().sum() + y.sum()).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(unit.W.grad).all()


def test_nru_bounds_huge_products():
    unit = build_unit("nru", 3, 1)
    set_w(unit, [[1.0, 1.0, -1.0]])
    y = unit(torch.tensor([[1e6, 1e6, 1e-6]]))  # 1e18 > e**30
    assert y.item() == pytest.approx(math.exp(MAX_EXPONENT), rel=1e-5)


VARIANTS = [("nru", {"div_mode": "div-sepSign"}, -1), ("nmru", {"sign_angle": "net"}, 0)]


@pytest.mark.parametrize(("name", "option", "low"), VARIANTS, ids=[v[0] for v in VARIANTS])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_each_sign_variant_gives_the_papers_outputs_at_discrete_weights(name, option, low, mode):
    torch.manual_seed(0)
    x = torch.randn(64, 3) * 5
    for _ in range(20):
        paper, variant = build_unit(name, 3, 2), build_unit(name, 3, 2, **option)
        w = torch.randint(low, 2, paper.W.shape).float()  # every weight on a value of {low, .., 1}
        for unit in (paper, variant):
            set_w(unit, w)
            unit.train(mode == "train")
        torch.testing.assert_close(variant(x), paper(x), msg=f"weights {w.tolist()}")


def test_nru_sep_sign_mode_takes_no_sign_from_a_nearly_ignored_input():
    # a / b with a third, negative input at W = 0.004: in training div mode its factor is about -1 (a sign
    # flip that evaluation does not have); div-sepSign takes signs only from weights that round to +-1
    x = torch.tensor([[6.0, 2.0, -5.0]])
    w = [[1.0, -1.0, 0.004]]
    div, sep = build_unit("nru", 3, 1), build_unit("nru", 3, 1, div_mode="div-sepSign")
    for unit in (div, sep):
        set_w(unit, w)
    assert div.train()(x).item() == pytest.approx(-3.0, rel=0.01)
    assert div.eval()(x).item() == pytest.approx(3.0, rel=0.01)
    assert sep.train()(x).item() == pytest.approx(3.0, rel=0.01)
    assert sep.eval()(x).item() == pytest.approx(3.0, rel=0.01)
    with pytest.raises(ValueError, match="div_mode='sep'.*div, div-sepSign"):
        build_unit("nru", 3, 1, div_mode="sep")


def test_nru_clamp_regulariser_and_init():
    unit = build_unit("nru", 3, 1)
    set_w(unit, [[2.0, -0.25, -1.5]])
    assert unit.sparsity_error().item() == pytest.approx(0.25)
    assert unit.regularizer().item() == pytest.approx(0.25 / 3)  # min(|w|, |1 - |w||) = 0, 0.25, 0
    unit.project_()
    assert torch.equal(unit.W, torch.tensor([[1.0, -0.25, -1.0]]))
    big = NRU(100, 100)
    r = math.sqrt(3) * math.sqrt(2 / 200)
    assert big.W.abs().max() <= r and big.W.min() < -0.9 * r and big.W.max() > 0.9 * r
    assert NRU(2, 1).W.abs().max() <= 0.5


# --------------------------------------------------------------------------------------------------------
# NMRU
# --------------------------------------------------------------------------------------------------------


def test_nmru_weights_cover_inputs_then_reciprocals():
    unit = build_unit("nmru", 3, 2)
    assert unit.W.shape == (2, 6) and unit.W.min() >= 0.25 and unit.W.max() <= 0.75
    assert NMRU(50, 50).W.shape == (50, 100)


@pytest.mark.parametrize("sign_retrieval", [True, False])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_nmru_divides_exactly_with_either_sign(sign_retrieval, mode):
    unit = build_unit("nmru", 2, 3, sign_retrieval=sign_retrieval)
    unit.train(mode == "train")
    # a / b, b / a, a * b / b = a
    set_w(unit, [[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0]])
    x = torch.tensor([[1e6, -3e-3], [-2.5e5, 4e2], [-0.5, -0.25], [7.0, 1e-4]], dtype=torch.float64)
    a, b = x.unbind(-1)
    expected = torch.stack([a / b, b / a, a], dim=-1)
    torch.testing.assert_close(unit(x.float()).double(), expected, rtol=1e-6, atol=0.0)


def test_nmru_sign_retrieval_is_a_cosine_of_the_weights_on_negative_inputs():
    unit = build_unit("nmru", 2, 1)
    w = torch.tensor([[0.5, 0.3, 0.25, 0.6]])
    set_w(unit, w)
    x = torch.tensor([[-4.0, 2.0], [4.0, 2.0], [-4.0, -2.0]])
    tilde = torch.cat([x, 1 / x], dim=-1)
    magnitude = (w * tilde.abs() + 1 - w).prod(-1)
    angle = math.pi * ((tilde < 0).float() * w).sum(-1)
    torch.testing.assert_close(unit(x).squeeze(-1), magnitude * torch.cos(angle))
    # vanilla NMRU: the NMU on the signed [x, 1/x]
    vanilla = build_unit("nmru", 2, 1, sign_retrieval=False)
    set_w(vanilla, w)
    torch.testing.assert_close(vanilla(x).squeeze(-1), (w * tilde + 1 - w).prod(-1))


def test_nmru_net_sign_angle_keeps_the_sign_while_a_cancelling_pair_grows():
    # a * d * (1 / d) with d < 0: both of d's weights rise together from 0 to 1; the product stays a's sign
    x = torch.tensor([[2.0, -3.0]])
    t = torch.linspace(0, 1, 11)
    outputs = {}
    for angle in ("sum", "net"):
        unit = build_unit("nmru", 2, 1, sign_angle=angle)
        values = []
        for ti in t.tolist():
            set_w(unit, [[1.0, ti, 0.0, ti]])
            values.append(unit(x).item())
        outputs[angle] = torch.tensor(values)
    magnitude = 2 * (3 * t + 1 - t) * (t / 3 + 1 - t)
    torch.testing.assert_close(outputs["net"], magnitude)  # net angle t - t = 0: a's sign throughout
    torch.testing.assert_close(outputs["sum"], magnitude * torch.cos(2 * math.pi * t))
    assert outputs["sum"][5] < 0  # t = 0.5: the paper's angle is pi, the wrong sign


def test_nmru_rejects_an_unknown_sign_angle():
    with pytest.raises(ValueError, match="sign_angle='diff'.*sum, net"):
        NMRU(2, 1, sign_angle="diff")


def test_nmru_reciprocal_of_zero_is_bounded_and_gradients_finite():
    unit = build_unit("nmru", 2, 2)
    set_w(unit, [[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 1.0]])
    x = torch.tensor([[0.0, 3.0], [-1e-45, 0.0], [-2e-7, 1e-7]], requires_grad=True)
    y = unit(x)
    assert torch.isfinite(y).all()
    assert y[0, 0].item() == pytest.approx(1 / EPS) and y[0, 1].item() == 0.0
    assert y[1, 0].item() == pytest.approx(-1 / EPS)  # negative tiny input: -1/eps, the sign kept
    assert y[2, 0].item() == pytest.approx(-1 / 2e-7, rel=1e-5)  # exact above eps
    (y.square().sum() + y.sum()).backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(unit.W.grad).all()


def test_nmru_clamp_and_regulariser():
    unit = build_unit("nmru", 2, 1)
    set_w(unit, [[-0.5, 1.5, 0.25, 0.9]])
    assert unit.regularizer().item() == pytest.approx((0 + 0 + 0.25 + 0.1) / 4)
    assert unit.sparsity_error().item() == pytest.approx(0.25)
    unit.project_()
    assert torch.equal(unit.W, torch.tensor([[0.0, 1.0, 0.25, 0.9]]))


# --------------------------------------------------------------------------------------------------------
# modified RealNPU
# --------------------------------------------------------------------------------------------------------


def test_realnpu_mod_forward_is_the_realnpus_inside_the_box():
    mod = build_unit("realnpu_mod", 3, 2)
    real = build_unit("realnpu", 3, 2)
    with torch.no_grad():
        real.W_real.copy_(mod.W_real)
        mod.gate.copy_(torch.tensor([0.2, 0.9, 0.5]))
        real.gate.copy_(mod.gate)
    x = torch.randn(16, 3) * 3
    torch.testing.assert_close(mod(x), real(x))
    with torch.no_grad():  # out of the box: the modified unit computes with clamped weights
        mod.W_real.fill_(3.0)
        real.W_real.fill_(1.0)
    torch.testing.assert_close(mod(x), real(x))


def test_realnpu_mod_clips_weights_and_gate():
    unit = build_unit("realnpu_mod", 3, 1)
    with torch.no_grad():
        unit.W_real.copy_(torch.tensor([[2.0, -3.0, 0.5]]))
        unit.gate.copy_(torch.tensor([-1.0, 2.0, 0.3]))
    unit.project_()
    assert torch.equal(unit.W_real, torch.tensor([[1.0, -1.0, 0.5]]))
    assert torch.equal(unit.gate, torch.tensor([0.0, 1.0, 0.3]))


def test_realnpu_mod_discretisation_regulariser_and_sparsity_error():
    unit = build_unit("realnpu_mod", 3, 1)
    with torch.no_grad():
        unit.W_real.copy_(torch.tensor([[1.0, -0.25, 0.0]]))
        unit.gate.copy_(torch.tensor([1.0, 0.2, 0.0]))
    # mean |1 - |W|| = (0 + 0.75 + 1) / 3; mean min(g, 1 - g) = (0 + 0.2 + 0) / 3
    assert unit.regularizer().item() == pytest.approx(1.75 / 3 + 0.2 / 3)
    assert unit.sparsity_error().item() == pytest.approx(0.25)
    with torch.no_grad():
        unit.W_real.copy_(torch.tensor([[1.0, 0.0, -1.0]]))
        unit.gate.copy_(torch.tensor([1.0, 0.4, 1.0]))
    assert unit.sparsity_error().item() == pytest.approx(0.4)  # the gate counts too
    l1 = build_unit("realnpu_mod", 3, 1, l1=0.5)
    with torch.no_grad():
        l1.W_real.copy_(torch.tensor([[1.0, -1.0, 1.0]]))
        l1.gate.copy_(torch.tensor([1.0, 0.0, 1.0]))
    assert l1.regularizer().item() == pytest.approx(0.5 * 5 / 6)  # discretisation 0, mean |.| = 5/6
    ungated = build_unit("realnpu_mod", 2, 1, gated=False)
    with torch.no_grad():
        ungated.W_real.copy_(torch.tensor([[0.5, -1.0]]))
    assert ungated.regularizer().item() == pytest.approx(0.25)
    ungated.project_()


def test_realnpu_mod_init_is_nau_style():
    unit = ModifiedRealNPU(100, 100)
    r = math.sqrt(3) * math.sqrt(2 / 200)
    assert unit.W_real.abs().max() <= r and unit.W_real.abs().max() > 0.9 * r
    assert torch.equal(unit.gate, torch.full((100,), 0.5))
    assert ModifiedRealNPU(2, 1).W_real.abs().max() <= 0.5
    assert isinstance(unit, RealNPU)


# --------------------------------------------------------------------------------------------------------
# G-NALU
# --------------------------------------------------------------------------------------------------------


def phi_tanh(v):
    return (PHI**v - PHI ** (-v)) / (PHI**v + PHI ** (-v))


def phi_sigmoid(v):
    return 1 / (1 + PHI ** (-v))


@pytest.mark.parametrize("options", [{}, {"gate": "scalar", "shared_weights": False}])
def test_gnalu_is_the_nalu_in_base_phi(options):
    unit = build_unit("gnalu", 3, 2, **options).double()
    with torch.no_grad():
        for p in unit.parameters():
            p.normal_(0.0, 2.0)
    x = torch.rand(8, 3, dtype=torch.float64) * 4 + 0.5
    w_add = phi_tanh(unit.W_hat) * phi_sigmoid(unit.M_hat)
    w_mul = w_add if unit.shared_weights else phi_tanh(unit.W_hat_mul) * phi_sigmoid(unit.M_hat_mul)
    g = phi_sigmoid(x @ unit.G.T) if unit.gate == "input" else phi_sigmoid(unit.gate_logit)
    log_phi = torch.log(x.abs() + unit.eps) / math.log(PHI)
    expected = g * (x @ w_add.T) + (1 - g) * PHI ** (log_phi @ w_mul.T)
    torch.testing.assert_close(unit(x), expected, rtol=1e-10, atol=1e-12)
    # the same as a NALU whose raw parameters are scaled by ln(phi)
    nalu = NALU(3, 2, **options).double()
    with torch.no_grad():
        for (name, p), (name2, q) in zip(nalu.named_parameters(), unit.named_parameters(), strict=True):
            assert name == name2
            p.copy_(q * LN_PHI)
    torch.testing.assert_close(unit(x), nalu(x), rtol=1e-12, atol=1e-12)
    assert unit.regularizer().item() == 0.0


def test_gnalu_keeps_the_nalu_init_and_options():
    unit = GNALU(10, 10)
    ref = NALU(10, 10)
    assert unit.W_hat.abs().max() <= ref.W_hat.abs().max() * 1.2
    assert "gate" in GNALU.__init__.__code__.co_varnames
    with pytest.raises(ValueError, match="unknown gate"):
        build_unit("gnalu", 2, 1, gate="foo")


# --------------------------------------------------------------------------------------------------------
# replicas: vmap over stacked units equals each unit alone
# --------------------------------------------------------------------------------------------------------

VMAP_UNITS = [
    ("nru", {}),
    ("nru", {"sharpness": None}),
    ("nmru", {}),
    ("nmru", {"sign_retrieval": False}),
    ("realnpu_mod", {}),
    ("realnpu_mod", {"l1": 0.1}),
    ("nmru", {"grad_at_bounds": True}),
    ("nmru", {"sign_angle": "net"}),
    ("nru", {"grad_at_bounds": True}),
    ("nru", {"div_mode": "div-sepSign"}),
    ("realnpu_mod", {"grad_at_bounds": True}),
    ("gnalu", {}),
    ("gnalu", {"gate": "scalar", "shared_weights": False}),
]


@pytest.mark.parametrize(("name", "options"), VMAP_UNITS, ids=[n + str(o) for n, o in VMAP_UNITS])
def test_division_units_run_as_stacked_replicas(name, options):
    units = [build_unit(name, 4, 3, **options) for _ in range(3)]
    with torch.no_grad():  # some weights out of their boxes, so project_ has work to do
        for unit in units:
            for p in unit.parameters():
                p.mul_(2.5)
    stacked = StackedModel([copy.deepcopy(u) for u in units])
    x = torch.randn(3, 16, 4) * 3
    x[:, 0, 0] = 0.0
    x[:, 1, 1] = 1e6
    fn = stacked.vmap(lambda s, xs: stacked.call(s, "forward", xs), n_batched_args=1)
    y = fn(stacked.state(), x)
    y.square().mean(dim=(1, 2)).sum().backward()  # each replica's own mean loss
    reg = stacked.regularizer()
    for k, unit in enumerate(units):
        y_k = unit(x[k])
        torch.testing.assert_close(y[k], y_k, rtol=1e-5, atol=1e-6)
        y_k.square().mean().backward()
        torch.testing.assert_close(reg[k], unit.regularizer(), rtol=1e-6, atol=1e-7)
        for pname, p in unit.named_parameters():
            g = stacked.params[f"model.{pname}"].grad[k]
            torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-6 * float(p.grad.abs().max() + 1))
    assert torch.allclose(stacked.sparsity_error(), torch.stack([u.sparsity_error() for u in units]))
    stacked.project_()
    for k, unit in enumerate(units):
        unit.project_()
        for pname, p in unit.named_parameters():
            assert torch.equal(stacked.params[f"model.{pname}"][k], p.detach()), (name, pname)


# --------------------------------------------------------------------------------------------------------
# grad_at_bounds: a weight on a bound of its clamp keeps its gradient (the authors' code)
# --------------------------------------------------------------------------------------------------------


def test_box_is_the_clamp_with_or_without_the_gradient_on_the_bounds():
    t = torch.tensor([-1.0, 0.0, 0.3, 1.0, 1.5], requires_grad=True)
    for grad_at_bounds, expected in [(False, [0.0, 0.0, 1.0, 0.0, 0.0]), (True, [1.0] * 5)]:
        t.grad = None
        y = box(t, 0.0, 1.0, grad_at_bounds)
        assert torch.equal(y, torch.tensor([0.0, 0.0, 0.3, 1.0, 1.0]))
        y.sum().backward()
        assert t.grad.tolist() == expected, grad_at_bounds


@pytest.mark.parametrize("name", ["nau", "nmu", "nru", "nmru", "realnpu_mod"])
def test_the_repr_names_grad_at_bounds_only_when_it_is_on(name):
    assert "grad_at_bounds" not in repr(build_unit(name, 2, 1))
    assert "grad_at_bounds=True" in repr(build_unit(name, 2, 1, grad_at_bounds=True))


@pytest.mark.parametrize(
    ("name", "on_bounds"),
    [("nmru", [[0.0, 1.0, 0.0, 1.0]]), ("nru", [[1.0, -1.0]]), ("realnpu_mod", [[1.0, -1.0]])],
)
def test_a_weight_on_a_bound_learns_only_with_grad_at_bounds(name, on_bounds):
    """The same output either way; the default (torch's clamp) gives every weight on a bound a zero
    gradient, ``grad_at_bounds=True`` the derivative of the output (here nonzero for every weight)."""
    x = torch.tensor([[3.0, -2.0], [0.5, 4.0]])
    outputs, grads = [], []
    for grad_at_bounds in (False, True):
        torch.manual_seed(0)
        unit = build_unit(name, 2, 1, grad_at_bounds=grad_at_bounds).train()
        weight = unit.W if hasattr(unit, "W") else unit.W_real
        with torch.no_grad():
            weight.copy_(torch.tensor(on_bounds))
        y = unit(x)
        y.sum().backward()
        outputs.append(y.detach())
        grads.append(weight.grad.clone())
    torch.testing.assert_close(outputs[0], outputs[1])
    assert torch.equal(grads[0], torch.zeros_like(grads[0]))
    assert bool((grads[1] != 0).all()), grads[1]


def test_the_division_units_configs_keep_the_gradient_on_the_bounds():
    from omegaconf import OmegaConf

    from nalu_suite.resources import conf_dir

    for name in ("nmru", "nru", "realnpu_mod"):
        cfg = OmegaConf.load(Path(conf_dir()) / "unit" / f"{name}.yaml")
        assert cfg.second_options.grad_at_bounds is True, name


def test_nmru_training_noise_cancels_only_at_discrete_weights():
    """``noise=[lo, hi]``: the sNMU noise on the NMRU magnitudes (the authors' ``nmu_noise``)."""
    x = torch.tensor([[3.0, -2.0], [-0.5, 4.0]])
    unit = build_unit("nmru", 2, 1, noise=[1.0, 5.0])
    set_w(unit, [[1.0, 0.0, 0.0, 1.0]])  # a / b
    torch.testing.assert_close(unit.train()(x), unit.eval()(x))
    torch.testing.assert_close(unit(x).squeeze(-1), x[:, 0] / x[:, 1])
    set_w(unit, [[0.5, 0.0, 0.0, 1.0]])
    assert not torch.allclose(unit.train()(x), unit.eval()(x))
    with pytest.raises(ValueError, match="noise"):
        build_unit("nmru", 2, 1, noise=[0.0, 1.0])
