"""``optim.whiten_from``: Adam whose steps for the input weights are taken in the whitened input basis."""

from __future__ import annotations

import io

import pytest
import torch

from nalu_suite.errors import ConfigError
from nalu_suite.optim import build_optimizer, check_optim
from nalu_suite.whitened_adam import WhitenedAdam, uniform_whitening


def test_uniform_whitening_whitens_iid_uniform_inputs():
    P = uniform_whitening(5, 1.0, 2.0).double()
    A = torch.eye(5, dtype=torch.float64) / 12 + 1.5**2  # E[x x^T] of U[1, 2]^5
    assert torch.allclose(P @ A @ P, torch.eye(5, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(P, P.T)
    x = torch.rand(200_000, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 1
    white = x @ P
    assert torch.allclose(white.T @ white / len(x), torch.eye(5, dtype=torch.float64), atol=0.02)
    with pytest.raises(ValueError, match=r"lo < hi"):
        uniform_whitening(5, 2.0, 2.0)


def _quadratic(weight: torch.Tensor, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((x @ weight.T - target) ** 2).mean()


def _data(steps: int = 12):
    g = torch.Generator().manual_seed(1)
    return [
        (
            torch.rand(16, 4, generator=g, dtype=torch.float64) + 1,
            torch.randn(16, 3, generator=g, dtype=torch.float64),
        )
        for _ in range(steps)
    ]


def test_without_whitening_or_before_its_start_it_is_torch_adam():
    start = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours, theirs = start.clone().requires_grad_(), start.clone().requires_grad_()
    P = uniform_whitening(4, 1.0, 2.0).double()
    opt = WhitenedAdam([{"params": [ours], "whiten": P}], lr=0.05, weight_decay=0.01, start=100)
    ref = torch.optim.Adam([theirs], lr=0.05, weight_decay=0.01)
    for x, t in _data():
        for w, o in ((ours, opt), (theirs, ref)):
            o.zero_grad()
            _quadratic(w, x, t).backward()
            o.step()
    assert torch.allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    assert not torch.equal(ours, start)


def test_whitened_steps_are_adam_on_the_weights_in_the_whitened_basis():
    """WhitenedAdam on ``W`` moves ``W`` exactly as torch's Adam moves ``V`` with ``W = V P``."""
    P = uniform_whitening(4, 1.0, 2.0).double()
    W0 = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    W = W0.clone().requires_grad_()
    V = (W0 @ torch.linalg.inv(P)).requires_grad_()
    opt = WhitenedAdam([{"params": [W], "whiten": P}], lr=0.05, start=0)
    ref = torch.optim.Adam([V], lr=0.05)
    for x, t in _data():
        opt.zero_grad()
        _quadratic(W, x, t).backward()
        opt.step()
        ref.zero_grad()
        _quadratic(V @ P, x, t).backward()
        ref.step()
        assert torch.allclose(W, V @ P, rtol=1e-9, atol=1e-9)
    # and that is not plain Adam: the mean direction of the inputs moves much less
    plain = W0.clone().requires_grad_()
    adam = torch.optim.Adam([plain], lr=0.05)
    for x, t in _data():
        adam.zero_grad()
        _quadratic(plain, x, t).backward()
        adam.step()
    assert not torch.allclose(plain, W, atol=1e-3)


def test_stacked_weights_share_one_preconditioner():
    """Replicas stack weights as ``(R, out, in)``; each slice steps as it would alone."""
    P = uniform_whitening(4, 1.0, 2.0).double()
    stacked = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    alone = [stacked[k].clone().requires_grad_() for k in range(2)]
    stacked.requires_grad_()
    opt = WhitenedAdam([{"params": [stacked], "whiten": P}], lr=0.05)
    opts = [WhitenedAdam([{"params": [w], "whiten": P}], lr=0.05) for w in alone]
    for x, t in _data(5):
        opt.zero_grad()
        sum(_quadratic(stacked[k], x + k, t) for k in range(2)).backward()
        opt.step()
        for k, (w, o) in enumerate(zip(alone, opts, strict=True)):
            o.zero_grad()
            _quadratic(w, x + k, t).backward()
            o.step()
    for k in range(2):
        assert torch.allclose(stacked[k], alone[k], rtol=1e-12, atol=1e-12)


def test_state_dict_round_trip_continues_identically():
    P = uniform_whitening(4, 1.0, 2.0).double()
    W = torch.randn(3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64).requires_grad_()
    data = _data(8)
    opt = WhitenedAdam([{"params": [W], "whiten": P}], lr=0.05, start=2)
    for x, t in data[:4]:
        opt.zero_grad()
        _quadratic(W, x, t).backward()
        opt.step()
    W2 = W.detach().clone().requires_grad_()
    opt2 = WhitenedAdam([{"params": [W2], "whiten": P}], lr=0.05, start=2)
    saved = io.BytesIO()  # through bytes, as a checkpoint: the loaded state must not share tensors
    torch.save(opt.state_dict(), saved)
    saved.seek(0)
    opt2.load_state_dict(torch.load(saved, weights_only=True))
    for x, t in data[4:]:
        for w, o in ((W, opt), (W2, opt2)):
            o.zero_grad()
            _quadratic(w, x, t).backward()
            o.step()
    assert torch.equal(W, W2)


def test_after_whiten_until_it_is_a_fresh_torch_adam_from_the_weights_it_reached():
    """Whitened steps from 0 to 3, then plain Adam with new moments: the same as torch's Adam started at
    step 3 from the whitened run's weights."""
    start = torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = start.clone().requires_grad_()
    P = uniform_whitening(4, 1.0, 2.0).double()
    opt = WhitenedAdam([{"params": [ours], "whiten": P}], lr=0.05, start=0, stop=3)
    data = list(_data())
    assert len(data) > 5
    theirs, ref = None, None
    for k, (x, t) in enumerate(data):
        if k == 3:  # the switch: torch's Adam takes over from where the whitened steps left the weights
            theirs = ours.detach().clone().requires_grad_()
            ref = torch.optim.Adam([theirs], lr=0.05)
        pairs = [(ours, opt)] + ([(theirs, ref)] if theirs is not None else [])
        for w, o in pairs:
            o.zero_grad()
            _quadratic(w, x, t).backward()
            o.step()
        if k == 2:
            whitened = WhitenedAdam([{"params": [w := start.clone().requires_grad_()], "whiten": P}], lr=0.05)
            for x2, t2 in data[:3]:
                whitened.zero_grad()
                _quadratic(w, x2, t2).backward()
                whitened.step()
            assert torch.allclose(ours, w, rtol=1e-12, atol=1e-12)  # whitened until the switch
    assert torch.allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    always = WhitenedAdam([{"params": [w := start.clone().requires_grad_()], "whiten": P}], lr=0.05)
    for x, t in data:
        always.zero_grad()
        _quadratic(w, x, t).backward()
        always.step()
    assert not torch.allclose(ours, w, rtol=1e-6, atol=1e-6)  # stopping the whitening changed the steps


@pytest.mark.parametrize(
    "optim, message",
    [
        ({"name": "sgd", "whiten_from": 10}, "needs optim.name=adam"),
        ({"name": "adam", "whiten_from": -1}, "must be null or a step >= 0"),
        ({"name": "adam", "whiten_from": True}, "must be null or a step >= 0"),
        ({"name": "adam", "whiten_from": "100"}, "must be null or a step >= 0"),
        ({"name": "adam", "whiten_from": 100, "whiten_until": 100}, "a step after optim.whiten_from=100"),
        ({"name": "adam", "whiten_until": 100}, "a step after optim.whiten_from=None"),
    ],
)
def test_bad_whiten_from_is_a_config_error(optim, message):
    with pytest.raises(ConfigError, match=message):
        check_optim(optim)


def test_whiten_from_without_input_weights_warns_and_is_plain_adam(caplog):
    w = torch.zeros(2, 2, requires_grad=True)
    with caplog.at_level("WARNING", logger="nalu_suite"):
        optimizer = build_optimizer([w], {"name": "adam", "whiten_from": 5}, 100, whitening=[])
    assert type(optimizer) is torch.optim.Adam
    assert "optim.whiten_from=5: the model has no input weights to whiten; plain Adam" in caplog.text
