"""iNALU's re-initialisation of stuck runs (Schlör, Ring & Hotho, "iNALU: Improved Neural Arithmetic Logic
Unit", Frontiers in Artificial Intelligence 2020, Sec. 3.5), for both engines (Lightning and replicas).

Every run stores its training loss (the task loss, without the regulariser) at every step since its last
re-initialisation. At every step ``t > 0`` with ``t % reinit.every == 0``, a run that has stored more than
``reinit.min_losses`` losses is re-initialised when it is stuck:

    mean(first half) <= mean(second half) + sd(second half)   and   mean(second half) > reinit.threshold

(``sd``: the population standard deviation; a list of odd length puts the extra loss in the second half).
Its stored losses are then cleared. The defaults are the paper's and the Primer's (Mistry, Farrahi & Hare,
JMLR 2022, ``--reinit``): every 10 steps, more than 5,000 losses, threshold 1 (``reinit.every: 0`` turns
the rule off, the default). What is stored is ``reinit.signal``: ``loss``, the step's training loss (the
iNALU paper), or ``validation``, the latest validation value of ``task.monitor`` at every step (the
Primer's script stores its latest interpolation-validation error, computed every 1,000 steps, so). As in the
Primer's script, which also evaluates at step 0, both engines then validate the untrained model once before
the first step (``watches_validation``), so the list starts with its error; that validation is not logged.

Re-initialising draws the weights a freshly built model has (``task.build_model()``) from the torch
generator seeded with ``rng.derive_seed(seed, "reinit", t)``, so replica ``k`` of a replica run and the
plain run with seed ``s + k`` draw the same weights (the global generator is left as it was). Only the
parameters change: the optimiser keeps its state, as in the authors' code (new values assigned to the
trainable variables) and the Primer's (``reset_parameters()``).

The means are taken from running sums in float64 (elementwise over the runs, so a run's decision does
not depend on how many runs are stacked with it). A Lightning run resumed from a checkpoint starts with
no stored losses.
"""

from __future__ import annotations

from typing import Any

import torch

from nalu_suite.errors import ConfigError, check_int, check_number
from nalu_suite.rng import derive_seed

#: the paper's values; ``every: 0`` is off
DEFAULTS = {"every": 0, "min_losses": 5000, "threshold": 1.0, "signal": "loss"}
#: what a run stores at each step (module docstring)
SIGNALS = ("loss", "validation")


def check_reinit(cfg: dict[str, Any] | None, task=None, strategy: str | None = None) -> dict[str, Any]:
    """The ``reinit`` config with its defaults; ``ConfigError`` for a bad value, or, while the rule is on,
    for a task that trains with its own LightningModule (``task.system_class()``, e.g. gridworld) or a DDP
    ``strategy`` (each process sees its own losses, so they would re-initialise differently)."""
    cfg = DEFAULTS | dict(cfg or {})
    unknown = sorted(set(cfg) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"reinit.{unknown[0]} is not a setting; choose from: {', '.join(DEFAULTS)}")
    check_int("reinit.every (steps between checks; 0: off)", cfg["every"], 0)
    check_int("reinit.min_losses", cfg["min_losses"], 1)
    check_number("reinit.threshold", cfg["threshold"], 0)
    if cfg["signal"] not in SIGNALS:
        raise ConfigError(f"reinit.signal={cfg['signal']!r} is not valid; choose from: {', '.join(SIGNALS)}")
    if cfg["every"] and task is not None and task.system_class() is not None:
        raise ConfigError(
            f"reinit.every={cfg['every']}: task={task.name} trains with its own LightningModule, which has "
            "no re-initialisation; use reinit.every=0"
        )
    if cfg["every"] and "ddp" in str(strategy or ""):
        raise ConfigError(
            f"reinit.every={cfg['every']} needs one process (trainer=cpu or replicas=R): with "
            f"trainer.strategy={strategy} each process would decide on its own losses"
        )
    return cfg


class StuckRuns:
    """The stored losses of ``runs`` runs and the rule above; ``record`` says which to re-initialise."""

    def __init__(self, cfg: dict[str, Any], runs: int, capacity: int = 1024) -> None:
        cfg = check_reinit(cfg)
        self.every, self.min_losses = int(cfg["every"]), int(cfg["min_losses"])
        self.threshold = float(cfg["threshold"])
        self.signal = cfg["signal"]
        self.runs, self.capacity = runs, max(1, capacity)
        self.stored = 0  # losses recorded so far, by every run (the next index)
        self.start = torch.zeros(runs, dtype=torch.long)  # index of each run's first stored loss
        self.count = [0] * runs  # re-initialisations per run
        self._sums: torch.Tensor | None = None  # (runs, capacity + 1): sums since each run's start
        self._squares: torch.Tensor | None = None

    @property
    def enabled(self) -> bool:
        return self.every > 0

    @property
    def watches_validation(self) -> bool:
        """Whether the rule stores validation values: then the untrained model is validated before step 0."""
        return self.enabled and self.signal == "validation"

    def watched(self, loss: torch.Tensor, latest: torch.Tensor | float | None) -> torch.Tensor | None:
        """What the runs store this step: their training ``loss`` or (``signal: validation``) their
        ``latest`` validation values of ``task.monitor`` (a tensor, or one run's float, made a float32
        tensor as the replica engine's are), None before the first validation."""
        if self.signal == "loss":
            return loss
        if latest is None or isinstance(latest, torch.Tensor):
            return latest
        return torch.tensor([latest], dtype=torch.float32)

    @torch.no_grad()
    def record(self, step: int, losses: torch.Tensor) -> torch.Tensor:
        """Store each run's training loss of step ``step`` (``(runs,)``; non-finite ones count as 0: such a
        run has diverged); return the ``(runs,)`` bool mask of the runs to re-initialise now."""
        losses = losses.detach().reshape(self.runs).to(torch.float64)
        losses = torch.where(torch.isfinite(losses), losses, torch.zeros_like(losses))
        self._grow(losses.device)
        i = self.stored
        self._sums[:, i + 1] = self._sums[:, i] + losses
        self._squares[:, i + 1] = self._squares[:, i] + losses * losses
        self.stored = end = i + 1
        fire = torch.zeros(self.runs, dtype=torch.bool, device=losses.device)
        if not self.enabled or step <= 0 or step % self.every:
            return fire
        start = self.start.to(losses.device)
        n = end - start
        half = n // 2
        mid = (start + half).view(-1, 1)
        at_mid = self._sums.gather(1, mid).view(-1)
        first = at_mid / half.clamp(min=1)
        second_n = (n - half).clamp(min=1)
        second = (self._sums[:, end] - at_mid) / second_n
        second_sq = (self._squares[:, end] - self._squares.gather(1, mid).view(-1)) / second_n
        sd = (second_sq - second * second).clamp(min=0).sqrt()
        fire = (n > self.min_losses) & (first <= second + sd) & (second > self.threshold)
        return fire

    def cleared(self, fired: torch.Tensor) -> None:
        """Clear the stored losses of the runs in ``fired`` (they were re-initialised) and count them."""
        fired = fired.to(self.start.device)
        if not bool(fired.any()):
            return
        self.start[fired] = self.stored
        mask = fired.to(self._sums.device)
        self._sums[mask, self.stored] = 0.0
        self._squares[mask, self.stored] = 0.0
        for k in fired.nonzero().flatten().tolist():
            self.count[k] += 1

    def _grow(self, device: torch.device) -> None:
        if self._sums is None:
            self._sums = torch.zeros(self.runs, self.capacity + 1, dtype=torch.float64, device=device)
            self._squares = torch.zeros_like(self._sums)
        elif self.stored >= self.capacity:
            extra = torch.zeros_like(self._sums)
            self._sums = torch.cat([self._sums, extra], dim=1)
            self._squares = torch.cat([self._squares, torch.zeros_like(extra)], dim=1)
            self.capacity = self._sums.shape[1] - 1


def fresh_parameters(task, seed: int, step: int) -> dict[str, torch.Tensor]:
    """The parameters of ``task.build_model()`` drawn from ``derive_seed(seed, "reinit", step)``, by name;
    the global torch generator is restored afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "reinit", step))
        model = task.build_model()
    return {name: value.detach() for name, value in model.named_parameters()}
