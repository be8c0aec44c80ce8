"""``replica_compile=true``: a whole replica training step as one compiled graph.

Forward and backward of all R replicas (``torch.func.grad`` of the summed loss), the optimiser's update
and the projection run in one inductor graph. At these model sizes each eager kernel is tiny, so a
compiled loss followed by the optimiser's and the projection's eager kernels spent about half of an
R = 100 step dispatching them (BENCHMARKS.md, "the whole step compiled").

The optimisers are their own code, on their own state tensors: ``torch.optim.adam.adam`` (the function
``torch.optim.Adam`` and ``AdamW`` step with) and ``whitened_adam.adam_update_`` (``WhitenedAdam``'s,
whose step counting stays in Python: ``WhitenedAdam.advance``). Every parameter takes a step every step,
as in the eager engine, where every parameter of these models has a gradient.

Divergence as in the eager step: a replica whose loss is not finite, or that is frozen already, gets a
zero gradient and keeps its weights of before the step (the engine then marks it ``diverged_at``).

Not fused (:func:`unfused_reason`; the engine then compiles the loss only): other optimisers, AMSGrad,
``maximize``, gradient clipping, a projection that is not an elementwise clamp.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim.adam import adam

from nalu_suite.replicas.compiled import compile_fn
from nalu_suite.replicas.model import StackedModel, per_replica
from nalu_suite.whitened_adam import WhitenedAdam, adam_update_

FUSED_OPTIMIZERS = (torch.optim.Adam, WhitenedAdam)  # AdamW is an Adam


def unfused_reason(model: StackedModel, optimizer: torch.optim.Optimizer, clip_value) -> str | None:
    """Why a run's step cannot be one graph (None: it can)."""
    if not isinstance(optimizer, FUSED_OPTIMIZERS):
        return f"the optimiser {type(optimizer).__name__} (fused: Adam, AdamW, whitened Adam)"
    if any(group.get("amsgrad") or group.get("maximize") for group in optimizer.param_groups):
        return "Adam with amsgrad or maximize"
    if clip_value is not None:
        return "gradient clipping"
    if model.clamp_bounds() is False:
        return "a projection that is not an elementwise clamp"
    return None


class FusedStep:
    """One compiled training step of every replica of ``model``: call it with the batch, the
    regulariser's per-replica scale (None: no regulariser) and the live replicas; it returns each
    replica's task loss and whether it stepped (finite loss and alive)."""

    def __init__(
        self,
        model: StackedModel,
        optimizer: torch.optim.Optimizer,
        loss: Callable,
        loss_with_reg: Callable,
    ) -> None:
        """``loss(state, x, y)`` and ``loss_with_reg`` (returning ``(loss, regulariser)``) are the
        replica losses mapped over the replicas (``StackedModel.vmap``), not compiled."""
        self.model, self.optimizer = model, optimizer
        self.loss, self.loss_with_reg = loss, loss_with_reg
        self.names = list(model.params)
        index = {id(p): i for i, p in enumerate(model.params.values())}
        self.groups = [[index[id(p)] for p in group["params"]] for group in optimizer.param_groups]
        # each parameter's constant hyper-parameters, read here: the graph must not read param_groups,
        # whose "lr" changes every step (dynamo would compile again for each value)
        self.hyper = [()] * len(self.names)
        for group, members in zip(optimizer.param_groups, self.groups, strict=True):
            for i in members:
                self.hyper[i] = (
                    tuple(group["betas"]),
                    group["eps"],
                    group["weight_decay"],
                    bool(group.get("decoupled_weight_decay")),
                )
        self.whitened = isinstance(optimizer, WhitenedAdam)
        bounds = model.clamp_bounds()
        self.bounds = [bounds.get(name) for name in self.names]
        self.weights = [p.detach() for p in model.params.values()]  # the same storage, updated in place
        self.device = self.weights[0].device
        self.last_graph: tuple = ()  # what the last call's graph depended on (a new value: it compiled)
        self._step = compile_fn(self._graph)

    def __call__(self, batch, scale: torch.Tensor | None, alive: torch.Tensor):
        """One step; the optimiser's per-step values (learning rate; Adam's step count, or whitened Adam's
        bias corrections and ``P`` where this step is whitened) go into the graph as tensors."""
        moments, extras = [], []
        for group, members in zip(self.optimizer.param_groups, self.groups, strict=True):
            lr = torch.tensor(float(group["lr"]), device=self.device)
            for i in members:
                p = self.model.params[self.names[i]]
                if self.whitened:
                    whiten, bias1, bias2 = self.optimizer.advance(group, p)
                    corrections = torch.tensor([bias1, bias2], device=self.device)
                    extras.append((lr, corrections[0], corrections[1], whiten))
                else:
                    extras.append((lr, _adam_state(self.optimizer, p)["step"]))
                state = self.optimizer.state[p]
                moments.append((state["exp_avg"], state["exp_avg_sq"]))
        whitened = tuple(extra[-1] is not None for extra in extras) if self.whitened else ()
        self.last_graph = (scale is None, whitened)
        return self._step(self.weights, moments, extras, *batch, scale, alive)

    def _graph(self, weights, moments, extras, x, y, scale, alive):
        buffers = self.model.buffers

        def total(weights):
            state = (dict(zip(self.names, weights, strict=True)), buffers)
            if scale is None:
                task_loss = loss = self.loss(state, x, y)
            else:
                task_loss, reg = self.loss_with_reg(state, x, y)
                loss = task_loss + scale * reg
            stepped = alive & torch.isfinite(loss)
            return torch.where(stepped, loss, torch.zeros_like(loss)).sum(), (task_loss, stepped)

        grads, (task_loss, stepped) = torch.func.grad(total, has_aux=True)(weights)
        with torch.no_grad():
            masks = [per_replica(stepped, w) for w in weights]
            grads = [torch.where(m, g, torch.zeros_like(g)) for m, g in zip(masks, grads, strict=True)]
            before = [w.clone() for w in weights]
            self._optimize(weights, grads, moments, extras)
            for w, bound, m, old in zip(weights, self.bounds, masks, before, strict=True):
                if bound is not None:
                    w.copy_(torch.clamp(w, bound[0], bound[1]))
                w.copy_(torch.where(m, w, old))
        return task_loss, stepped

    def _optimize(self, weights, grads, moments, extras) -> None:
        for i, (betas, eps, weight_decay, decoupled) in enumerate(self.hyper):
            (m, v), extra = moments[i], extras[i]
            if self.whitened:
                lr, bias1, bias2, whiten = extra
                adam_update_(
                    weights[i],
                    grads[i],
                    m,
                    v,
                    lr=lr,
                    betas=betas,
                    eps=eps,
                    weight_decay=weight_decay,
                    bias_corrections=(bias1, bias2),
                    whiten=whiten,
                )
            else:
                lr, step = extra
                adam(
                    [weights[i]],
                    [grads[i]],
                    [m],
                    [v],
                    [],
                    [step],
                    foreach=False,
                    amsgrad=False,
                    beta1=betas[0],
                    beta2=betas[1],
                    lr=lr,
                    weight_decay=weight_decay,
                    eps=eps,
                    maximize=False,
                    decoupled_weight_decay=decoupled,
                )


def _adam_state(optimizer: torch.optim.Adam, p: torch.Tensor) -> dict:
    """``optimizer``'s state of ``p``, made where missing as ``torch.optim.Adam``'s first step makes it
    (a float32 step count, zero moments)."""
    state = optimizer.state[p]
    if not state:
        state["step"] = torch.tensor(0.0, dtype=torch.float32, device=p.device)
        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    return state
