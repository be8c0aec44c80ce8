"""A module trained slower than the rest of its model and evaluated with averaged weights.

:class:`SlowAveragedModule` wraps any ``nn.Module``: a learning-rate multiplier by reparametrisation, and
Polyak averaging of its weights for evaluation (Polyak & Juditsky 1992). The MNIST sequence tasks use it
for the CNN (Trask et al. 2018 §4.2), so the recurrent core settles before the CNN commits
(``docs/mnist.md``). Needs only torch.
"""

from __future__ import annotations

import torch
from torch import nn


class SlowAveragedModule(nn.Module):
    """``module`` trained ``lr_scale`` times slower than the rest and evaluated with averaged weights.

    * Learning-rate multiplier: the parameters are stored as ``theta = w / lr_scale`` and used as
      ``w = lr_scale * theta``. Adam (and AdamW, RMSprop) moves every ``theta`` by about ``lr`` per step
      whatever the gradient's size, so ``w`` moves about ``lr_scale * lr`` (with plain SGD the factor is
      ``lr_scale ** 2``); no second optimiser group is needed.
    * Weight averaging (Polyak averaging; ``average`` = the decay ``d`` of an exponential moving average,
      0 = off): every training forward pass first folds the current weights into the average,
      ``avg = d_n * avg + (1 - d_n) * theta`` with ``d_n = min(d, (1 + n) / (10 + n))`` after ``n`` updates;
      in eval mode the module computes with the average. Averaging the last ~1/(1 - d) steps removes most
      of the noise of a constant learning rate, as a decaying learning rate would.
    """

    def __init__(self, module: nn.Module, lr_scale: float = 1.0, average: float = 0.0) -> None:
        super().__init__()
        if not lr_scale > 0:
            raise ValueError(f"SlowAveragedModule lr_scale={lr_scale!r} must be > 0")
        if not 0.0 <= average < 1.0:
            raise ValueError(f"SlowAveragedModule average={average!r} must be in [0, 1)")
        self.module = module
        self.lr_scale = float(lr_scale)
        self.average = float(average)
        self.names = [name for name, _ in module.named_parameters()]
        with torch.no_grad():
            for p in module.parameters():
                p.div_(self.lr_scale)
        if self.average:
            for i, p in enumerate(module.parameters()):
                self.register_buffer(f"avg_{i}", p.detach().clone())
            self.register_buffer("avg_updates", torch.zeros((), dtype=torch.long))

    def averaged(self) -> list[torch.Tensor]:
        return [getattr(self, f"avg_{i}") for i in range(len(self.names))]

    @torch.no_grad()
    def _update_average(self) -> None:
        n = int(self.avg_updates)
        decay = min(self.average, (1 + n) / (10 + n))
        for avg, p in zip(self.averaged(), self.module.parameters(), strict=True):
            avg.mul_(decay).add_(p.detach(), alpha=1 - decay)
        self.avg_updates += 1

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        if self.average and self.training and torch.is_grad_enabled():
            self._update_average()
        use_average = self.average and not self.training
        params = self.averaged() if use_average else list(self.module.parameters())
        if self.lr_scale == 1.0 and not use_average:
            return self.module(*args)
        weights = {name: p * self.lr_scale for name, p in zip(self.names, params, strict=True)}
        return torch.func.functional_call(self.module, weights, args)

    def extra_repr(self) -> str:
        return f"lr_scale={self.lr_scale}, average={self.average}"
