"""Random restarts in one run: K independently initialised models trained side by side.

Some seeds of the program-evaluation model settle in a poor local minimum (an if-form decided at chance,
a sign ignored) that more steps do not leave. The usual remedy is to restart and keep the run that
validates best. :class:`Candidates` does this inside one run: every member sees the same batches and is
trained on its own loss (the members share no parameters, so each gradient is the one it would get
alone, up to gradient clipping, which Lightning applies to the global norm). Training batches are fresh
draws, so each member's loss on a batch, taken before the step that uses it, is an unbiased estimate of
its error on unseen programs; a running mean of it picks the member that answers in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nalu_suite.tasks.base import ArithmeticModel


class Candidates(ArithmeticModel):
    """``k`` models from ``build()``; in training ``forward`` returns all predictions ``(k, N)``, in eval mode
    the prediction ``(N,)`` of :attr:`selected`, the member with the lowest running training loss.

    The task's loss passes the per-member losses to :meth:`observe` (an exponential moving average with
    ``momentum``, kept as a buffer, so a checkpoint answers with the member it was validated with).
    """

    def __init__(self, build: Callable[[], ArithmeticModel], k: int, momentum: float = 0.99) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"candidates={k} must be >= 1")
        self.members = nn.ModuleList(build() for _ in range(k))
        self.momentum = momentum
        self.register_buffer("running_loss", torch.full((k,), float("inf")))

    @property
    def selected(self) -> int:
        """Index of the member with the lowest running loss (0 before any loss was observed)."""
        return int(torch.argmin(torch.nan_to_num(self.running_loss, nan=float("inf"))))

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.training:
            return torch.stack([member(*inputs) for member in self.members])
        return self.members[self.selected](*inputs)

    @torch.no_grad()
    def observe(self, losses: torch.Tensor) -> None:
        """Fold the members' losses ``(k,)`` on one batch into the running means (averaged over DDP ranks)."""
        losses = losses.detach().to(self.running_loss)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            losses = losses.clone()
            torch.distributed.all_reduce(losses)
            losses /= torch.distributed.get_world_size()
        first = torch.isinf(self.running_loss)
        blended = self.momentum * self.running_loss + (1 - self.momentum) * losses
        self.running_loss.copy_(torch.where(first, losses, blended))

    # --- the ArithmeticModel hooks ----------------------------------------------------------------------
    def regularizer(self) -> torch.Tensor:
        return torch.stack([member.regularizer() for member in self.members]).sum()

    def sparsity_error(self) -> torch.Tensor:
        return self.members[self.selected].sparsity_error()

    @torch.no_grad()
    def project_(self) -> None:
        for member in self.members:
            member.project_()

    def on_train_step(self, step: int) -> None:
        for member in self.members:
            member.on_train_step(step)
