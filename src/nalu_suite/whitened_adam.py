"""Adam with whitened steps for weights that read the inputs (``optim.whiten_from``; project addition).

For a weight ``W`` of shape ``(..., out, in)`` applied as ``h = W x``, the gradient is ``E[g x^T]``, so
inputs with a large common mean make one direction of ``W`` (the mean's) dominate it. On the static task
(``x ~ U[1, 2]^100``) Adam's per-coordinate scaling then sees mostly that direction, and the small
*contrast* gradient that splits the NAU's two hidden units into ``a`` and ``b`` under an NMU is drowned:
every seed stops at the symmetric saddle (docs/replicas.md), where Madsen & Johansen need about 1.4e6
steps. Here the Adam moments of such a weight are kept for ``g' = g P`` and the step is ``u P``, with
``P = E[x x^T]^(-1/2)``: Adam in the basis where the inputs are white, i.e. with K-FAC's input factor as
preconditioner (Martens & Grosse 2015, "Optimizing Neural Networks with Kronecker-factored Approximate
Curvature"). The model, its clamps and its regularisers are unchanged; only the steps differ.

The preconditioner acts from step ``start`` on; before that the steps are plain Adam. Whitening from the
first step fails (``optim.whiten_from=0`` solves 2 of 20 seeds of mul): the first steps must scale both
hidden units up at once, along the very direction that whitening slows down, and the NMU meanwhile
switches one of them off. From step 100 on it solves 98 of 100 (docs/static_arith.md).

The preconditioner can also stop (``optim.whiten_until``): whitened steps barely move a weight along
the inputs' mean direction, which is where the sparsity regulariser's pull on many small weights of one
sign points, so a regulariser acting under whitened steps leaves them about 0.01 off {-1, 0, 1}. From
step ``stop`` on the steps are plain Adam again, with fresh moments (the old ones are in the whitened
basis).
"""

from __future__ import annotations

import math

import torch


def uniform_whitening(n: int, lo: float, hi: float) -> torch.Tensor:
    """``P = A^(-1/2)`` with ``A = E[x x^T]`` for ``x`` of ``n`` i.i.d. U[lo, hi] entries.

    ``A = s^2 I + m^2 1 1^T`` (mean ``m``, variance ``s^2``) has eigenvalue ``s^2 + n m^2`` along
    ``1 / sqrt(n)`` and ``s^2`` on the rest, so ``A^(-1/2) = (I - U) / s + U / sqrt(s^2 + n m^2)`` with
    ``U = 1 1^T / n``.
    """
    if not hi > lo:
        raise ValueError(f"uniform_whitening needs lo < hi, got [{lo}, {hi}]")
    mean, var = (lo + hi) / 2, (hi - lo) ** 2 / 12
    uu = torch.full((n, n), 1.0 / n, dtype=torch.float64)
    rest = torch.eye(n, dtype=torch.float64) - uu
    whitening = rest / math.sqrt(var) + uu / math.sqrt(var + n * mean**2)
    return whitening.to(torch.get_default_dtype())


class WhitenedAdam(torch.optim.Optimizer):
    """Adam (Kingma & Ba 2015, as ``torch.optim.Adam`` without amsgrad) whose parameter groups may carry
    ``whiten``: a ``(in, in)`` matrix ``P`` for weights of shape ``(..., out, in)``, applied from step
    ``start`` (counted per parameter, from 0) until ``stop`` (exclusive; ``None``: to the end). Groups
    without ``whiten`` are plain Adam."""

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        start: int = 0,
        stop: int | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "whiten": None,
            "start": int(start),
            "stop": None if stop is None else int(stop),
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                whiten, bias1, bias2 = self.advance(group, p)
                state = self.state[p]
                adam_update_(
                    p,
                    p.grad,
                    state["exp_avg"],
                    state["exp_avg_sq"],
                    lr=group["lr"],
                    betas=(beta1, beta2),
                    eps=group["eps"],
                    weight_decay=group["weight_decay"],
                    bias_corrections=(bias1, bias2),
                    whiten=whiten,
                )
        return loss

    def advance(self, group: dict, p: torch.Tensor) -> tuple[torch.Tensor | None, float, float]:
        """Count one step of ``p`` (of ``group``): its state made on the first, its moments cleared at
        ``stop``. Returns ``P`` where this step is whitened (else None) and Adam's bias corrections
        ``1 - beta1^t``, ``1 - beta2^t`` for the ``t`` steps of the current moments."""
        state = self.state[p]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        whiten, stop = group["whiten"], group["stop"]
        if whiten is not None and state["step"] == stop:  # back to plain Adam: fresh moments
            state["exp_avg"].zero_()
            state["exp_avg_sq"].zero_()
            state["restart"] = stop
        active = whiten is not None and group["start"] <= state["step"] < (stop or math.inf)
        state["step"] += 1
        t = state["step"] - state.get("restart", 0)  # steps of the current moments
        beta1, beta2 = group["betas"]
        return (whiten.to(p) if active else None), 1 - beta1**t, 1 - beta2**t


def adam_update_(
    p, grad, exp_avg, exp_avg_sq, *, lr, betas, eps, weight_decay, bias_corrections, whiten=None
) -> None:
    """One Adam step of ``p`` in place (Kingma & Ba 2015, Algorithm 1; L2 ``weight_decay`` added to the
    gradient, as ``torch.optim.Adam``), its moments updated in place; ``bias_corrections = (1 - beta1^t,
    1 - beta2^t)``. With ``whiten`` (``P``) the moments are kept for ``g P`` and the step is ``u P``.
    ``lr`` and the corrections are floats, or 0-dim tensors inside a compiled replica step
    (``replicas.fused_step``)."""
    beta1, beta2 = betas
    bias1, bias2 = bias_corrections
    if weight_decay:
        grad = grad.add(p, alpha=weight_decay)
    if whiten is not None:
        grad = grad @ whiten
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = (exp_avg_sq / bias2).sqrt_().add_(eps)
    update = (exp_avg / bias1) / denom
    if whiten is not None:
        update = update @ whiten
    if isinstance(lr, torch.Tensor):
        p.sub_(update * lr)
    else:
        p.sub_(update, alpha=lr)
