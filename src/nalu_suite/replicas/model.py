"""R copies of a task's model as one stacked computation (``torch.func.stack_module_state`` + ``vmap``).

Every parameter of the R models is stacked into one ``(R, *shape)`` leaf tensor; ``torch.func.vmap``
over ``torch.func.functional_call`` runs the model's own code (forward, ``regularizer``,
``sparsity_error``, ``project_``) for all R parameter sets at once. Nothing is re-implemented: a unit
works here exactly when it works under ``vmap`` (every unit of ``nalu_suite.units`` does).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from nalu_suite.tasks.base import ArithmeticModel


class _Dispatch(nn.Module):
    """``forward(what, *args)`` calls ``model.<what>(*args)``, so ``functional_call`` reaches the hooks."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, what: str, *args):
        if what == "forward":
            return self.model(*args)
        return getattr(self.model, what)(*args)


def per_replica(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(R,)`` per-replica ``values`` (a mask, a factor) viewed as ``(R, 1, ..., 1)``, to broadcast over a
    stacked ``(R, ...)`` tensor ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def slice_state(state, subset: slice | None):
    """The replicas ``subset`` of a stacked ``state = (params, buffers)`` (all of them for ``None``)."""
    if subset is None:
        return state
    params, buffers = state
    return {k: v[subset] for k, v in params.items()}, {k: v[subset] for k, v in buffers.items()}


class StackedModel:
    """The parameters of ``models`` stacked along a new first (replica) dimension.

    ``params`` are the trainable leaf tensors (hand them to one optimiser); ``best`` snapshots keep the
    per-replica checkpoint. ``functional(params)`` returns a callable stand-in for one model, to be used
    inside a function that :meth:`vmap` maps over replicas. The models run in training mode, except
    inside :meth:`evaluating` (as Lightning switches a plain run's model for validation and test).
    """

    def __init__(self, models: Sequence[ArithmeticModel]) -> None:
        if not models:
            raise ValueError("StackedModel needs at least one model")
        wrapped = [_Dispatch(m) for m in models]
        self.params, self.buffers = stack_module_state(wrapped)
        self._template = copy.deepcopy(wrapped[0]).to("meta")
        self._single = copy.deepcopy(models[0])  # an unstacked copy, to hand out one replica's weights
        self.size = len(models)
        self._bounds: dict | bool | None = None  # the clamp bounds of project_, found on first use

    # --- calling the model's code ------------------------------------------------------------------------
    def call(self, state, what: str, *args):
        """``model.<what>(*args)`` for one replica's ``state = (params, buffers)``; use inside ``vmap``."""
        return functional_call(self._template, state, (what, *args))

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Evaluation mode (``nn.Module.eval()``) for the calls inside: units whose forward differs in
        training (the NRU's smooth ``|W|``, the sNMU's noise) compute their evaluation values."""
        self._template.eval()
        try:
            yield
        finally:
            self._template.train()

    def functional(self, state) -> Callable[[torch.Tensor], torch.Tensor]:
        """A stand-in for one model (``inputs -> outputs``), for task code that calls ``model(inputs)``."""
        return lambda inputs: self.call(state, "forward", inputs)

    def vmap(self, fn: Callable, n_batched_args: int = 0, **kwargs) -> Callable:
        """``vmap(fn)`` over the replica dimension of ``(params, buffers)`` and of the next
        ``n_batched_args`` positional arguments; call the result as ``f(self.state(), *args)``."""
        return vmap(fn, in_dims=(0,) + (0,) * n_batched_args, randomness="different", **kwargs)

    def state(self, subset: slice | None = None):
        return slice_state((self.params, self.buffers), subset)

    @torch.no_grad()
    def broadcast_state(self, model: ArithmeticModel):
        """``model``'s weights as every replica's ``state`` (to run one model on every replica's data), with
        the stacked weights' layout and ``requires_grad``, so a compiled function takes it as it takes
        :meth:`state`."""
        wrapped = _Dispatch(model)

        def stacked(value: torch.Tensor) -> torch.Tensor:
            return value.expand(self.size, *value.shape).clone()

        params = {
            name: stacked(value).requires_grad_(self.params[name].requires_grad)
            for name, value in wrapped.named_parameters()
        }
        buffers = {name: stacked(value) for name, value in wrapped.named_buffers()}
        return params, buffers

    # --- the ArithmeticModel hooks, for all replicas --------------------------------------------------------
    def regularizer(self) -> torch.Tensor:
        """``(R,)``: each replica's unscaled regulariser."""
        return self.vmap(lambda s: self.call(s, "regularizer"))(self.state())

    @torch.no_grad()
    def sparsity_error(self) -> torch.Tensor:
        """``(R,)``: each replica's sparsity error."""
        return self.vmap(lambda s: self.call(s, "sparsity_error"))(self.state())

    @torch.no_grad()
    def project_(self) -> None:
        """Each replica's ``project_()`` (clamps into the units' boxes), in place on the stacked weights.

        Every unit's ``project_`` is an elementwise clamp, so its bounds are found once
        (:meth:`clamp_bounds`) and applied with one ``clamp_`` per stacked tensor; a model whose
        projection is not a clamp is projected through ``vmap`` instead.
        """
        bounds = self.clamp_bounds()
        if bounds is False:
            self.vmap(lambda s: self.call(s, "project_"), out_dims=None)(self.state())
            return
        for name, (low, high) in bounds.items():
            self.params[name].clamp_(low, high)

    def clamp_bounds(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]] | bool:
        """Per-element ``(low, high)`` of ``project_`` for each parameter it changes, or ``False`` when
        ``project_`` is not an elementwise clamp (probed once on +inf, -inf and random values)."""
        if self._bounds is None:
            self._bounds = self._probe_bounds()
        return self._bounds

    @torch.no_grad()
    def _probe_bounds(self):
        probe, spreads = {}, {}
        for name, value in self.params.items():
            shape = value.shape[1:]
            spread = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(value) * 10
            spreads[name] = spread
            probe[name] = torch.stack(
                [torch.full_like(spread, math.inf), torch.full_like(spread, -math.inf), spread]
            )
        buffers = {
            name: value[:1].expand(3, *value.shape[1:]).clone() for name, value in self.buffers.items()
        }
        self.vmap(lambda s: self.call(s, "project_"), out_dims=None)((probe, buffers))
        bounds = {}
        for name, value in probe.items():
            high, low, projected = value[0], value[1], value[2]
            if not torch.equal(projected, torch.maximum(torch.minimum(spreads[name], high), low)):
                return False
            if bool(torch.isinf(high).all()) and bool(torch.isinf(low).all()):
                continue  # not projected
            bounds[name] = (low, high)
        return bounds

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, group: int | None = None) -> torch.Tensor:
        """Outputs of every replica (in evaluation mode) on its own inputs ``(R, N, ...)``; ``group``
        replicas at a time."""
        group = group or self.size
        outputs = []
        fn = self.vmap(lambda s, x: self.call(s, "forward", x), n_batched_args=1)
        with self.evaluating():
            for start in range(0, self.size, group):
                part = slice(start, min(start + group, self.size))
                outputs.append(fn(self.state(part), inputs[part]))
        return torch.cat(outputs)

    # --- snapshots ------------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.params.items()}

    @torch.no_grad()
    def load_(self, params: dict[str, torch.Tensor], replicas: torch.Tensor | None = None) -> None:
        """Copy ``params`` into the live weights: all replicas, or where the bool mask ``replicas`` is set."""
        for name, value in self.params.items():
            if replicas is None:
                value.copy_(params[name])
            else:
                value.copy_(torch.where(per_replica(replicas, value), params[name], value))

    def replica(self, k: int, params: dict[str, torch.Tensor] | None = None) -> ArithmeticModel:
        """Replica ``k`` as an ordinary (unstacked) model, e.g. to save or plot it."""
        params = params if params is not None else self.params
        model = copy.deepcopy(self._single)
        state = {name.removeprefix("model."): value[k].detach().clone() for name, value in params.items()}
        state |= {name.removeprefix("model."): value[k].clone() for name, value in self.buffers.items()}
        model.load_state_dict(state)
        return model
