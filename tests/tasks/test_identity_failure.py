"""The paper's Figure 1: MLPs fit the identity inside the training range and fail outside it."""

from __future__ import annotations

import pytest
import torch

from nalu_suite.errors import ConfigError
from nalu_suite.train import train


def test_mlps_fit_inside_and_fail_outside_and_the_figure_is_written(make_cfg, tmp_path):
    cfg = make_cfg(
        "task=identity_failure",
        "task.activations=[relu,tanh]",
        "task.models_per_activation=3",
        "task.eval_size=400",
        "trainer.max_steps=1500",
        "trainer.val_check_interval=500",
    )
    results = train(cfg)
    for act in ("relu", "tanh"):
        inside, outside = results[f"test/interp/{act}/mae"], results[f"test/extrap/{act}/mae"]
        assert inside < 0.5
        assert outside > 3 * inside  # the failure the paper shows
    png = tmp_path / "run" / "identity_failure.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_ensemble_members_are_independent_models():
    from nalu_suite.tasks.identity_failure import EnsembleMLP

    ens = EnsembleMLP(["tanh", "tanh", "relu", "relu"])
    x = torch.linspace(-1, 1, 7)
    out = ens(x)
    assert out.shape == (4, 7)
    out[2].sum().backward()  # member 2's output depends on member 2's weights only
    grads = ens.weights[0].grad
    assert grads[2].abs().sum() > 0 and grads[[0, 1, 3]].abs().sum() == 0


def test_unknown_activation_is_rejected_with_the_choices():
    from nalu_suite.tasks.identity_failure import IdentityFailureTask

    cfg = {"activations": ["relu", "swish"], "train_range": [-5, 5], "test_range": [-20, 20]}
    with pytest.raises(
        ConfigError, match="task.activations entry='swish' is not valid; choose one of: linear, relu"
    ):
        IdentityFailureTask(cfg, {}, 0)
