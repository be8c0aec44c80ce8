"""Random restarts in one run (``tasks/program_eval/candidates.py``); the task's use: test_program_eval.py."""

from __future__ import annotations

import torch
from torch import nn

from nalu_suite.tasks.base import ArithmeticModel
from nalu_suite.tasks.program_eval.candidates import Candidates


class Scale(ArithmeticModel):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(()))
        self.steps: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x

    def on_train_step(self, step: int) -> None:
        self.steps.append(step)


def test_each_member_gets_the_gradient_of_its_own_loss():
    torch.manual_seed(0)
    model = Candidates(Scale, 3)
    x, y = torch.randn(8), torch.randn(8)
    per_member = (model(x) - y).pow(2).mean(-1)
    assert per_member.shape == (3,)
    per_member.sum().backward()
    for member in model.members:
        alone = torch.func.grad(lambda w, m=member: (w * x - y).pow(2).mean())(member.w.detach())
        assert torch.allclose(member.w.grad, alone)


def test_the_member_with_the_lowest_running_loss_answers_in_eval_mode():
    torch.manual_seed(1)
    model = Candidates(Scale, 2, momentum=0.5)
    x = torch.arange(4.0)
    model.eval()
    assert model.selected == 0  # nothing observed yet
    model.observe(torch.tensor([1.0, 3.0]))
    assert model.running_loss.tolist() == [1.0, 3.0]  # the first observation is taken as it is
    model.observe(torch.tensor([5.0, 0.0]))  # running means 3.0 and 1.5
    assert model.running_loss.tolist() == [3.0, 1.5] and model.selected == 1
    assert torch.equal(model(x), model.members[1](x))
    model.train()
    assert model(x).shape == (2, 4)
    model.on_train_step(7)
    assert [m.steps for m in model.members] == [[7], [7]]


def test_a_checkpoint_answers_with_the_member_it_was_validated_with():
    torch.manual_seed(2)
    model = Candidates(Scale, 2)
    model.observe(torch.tensor([2.0, 1.0]))
    restored = Candidates(Scale, 2)
    assert restored.selected == 0
    restored.load_state_dict(model.state_dict())
    assert restored.selected == 1 and torch.equal(restored.members[1].w, model.members[1].w)
