"""Numerical helpers shared by the units: NAC weight parametrisation and init, bounded exp/product.

Every clamp in the package that is *not* from the literature is defined here, so it is documented once:

* ``MAX_EXPONENT = 30`` (project addition). The multiplicative units (NAC•, NALU, NMU, NPU, RealNPU)
  compute ``exp(z)`` of a log-space sum ``z``; we clamp ``z <= MAX_EXPONENT`` so ``|y| <= e**30 ~ 1.07e13``.
  This keeps a product of two inputs of magnitude 1e6 (1e12) representable, while the gradient of a
  squared-error loss through the log path, ``~ 2 y**2 / eps`` with ``eps = 1e-7``, stays ``~ 1e33``, well
  inside float32's 3.4e38 (an ``exp`` clamp of ~44, i.e. ``sqrt(float32 max)``, would already overflow
  ``y**2 / eps``). Gradients are exact below the clamp and zero above it (``torch.clamp`` semantics).
  iNALU keeps its own published ``omega = 20``.
"""

from __future__ import annotations

import math

import torch

#: Upper bound on log-space sums before ``exp`` (project addition, see module docstring).
MAX_EXPONENT = 30.0


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``; for a 2-D ``x`` computed as ``(weight @ x^T)^T``.

    The same product, in the layout that PyTorch's batched matmul runs fastest when ``vmap`` stacks the
    weights of many replicas (``replicas=R``): forward and backward of a (128 x 100) batch through R = 100
    stacked (100 -> 2) layers take 0.65 ms instead of 2.0 ms (``scripts/bench_linear_layout.py``,
    BENCHMARKS.md). A single model runs at the same speed either way; the result can differ from
    ``F.linear`` in the last bit. In a compiled evaluation (``torch.compile`` under ``no_grad``) a broadcast
    multiply and a sum over the inputs instead, which inductor runs as one pass over ``x``: the compiled
    validations of the static table's units with linear layers are a fifth to two fifths faster
    (BENCHMARKS.md, "unit by unit"). In training the matrix product stayed faster for these plain
    weighted sums (``fused_linear``).
    """
    if x.dim() != 2:
        return torch.nn.functional.linear(x, weight, bias)
    if torch.compiler.is_compiling() and not torch.is_grad_enabled():
        out = (x.unsqueeze(-2) * weight).sum(dim=-1)
        return out if bias is None else out + bias
    out = (weight @ x.mT).mT
    return out if bias is None else out + bias


def fused_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """:func:`linear` ``(x, weight)``; under ``torch.compile`` a broadcast multiply and a sum over the
    last dimension instead.

    Inductor fuses that sum with the elementwise work that produces ``x`` (a mask, a log) into one loop
    over the inputs, where a matrix product needs ``x`` written out first (5 MB per operand at R = 100,
    batch 128, 100 inputs) and reads it again in the backward. The units whose inputs pass through a log
    or a mask take their products this way (iNALU, NALU, NPU, RealNPU: each faster compiled, BENCHMARKS.md
    "Fused input products"); plain weighted sums (NAC, NAU, dense layers) keep ``linear``, which measured
    as fast or faster. Not in eager code, where the broadcast product would be materialised.
    """
    if torch.compiler.is_compiling():
        return (x.unsqueeze(-2) * weight).sum(dim=-1)
    return linear(x, weight)


def nac_weight(w_hat: torch.Tensor, m_hat: torch.Tensor) -> torch.Tensor:
    """NAC weight ``W = tanh(W_hat) * sigmoid(M_hat)`` (Trask et al. 2018, eq. 1); W lies in (-1, 1)."""
    return torch.tanh(w_hat) * torch.sigmoid(m_hat)


def nac_weight_variance(r: float) -> float:
    """``Var[tanh(w) * sigmoid(m)]`` for independent ``w, m ~ U[-r, r]``.

    Derived in closed form: ``E[tanh] = 0`` so the variance is ``E[tanh^2] E[sigmoid^2]`` with
    ``E[tanh^2] = 1 - tanh(r)/r`` (``tanh^2 = 1 - tanh'``) and
    ``E[sigmoid^2] = (r - tanh(r/2)) / (2r)`` (``sigmoid^2 = sigmoid - sigmoid'`` and the integral of
    ``sigmoid`` is ``softplus``).
    Increases monotonically from 0 (r -> 0) towards 1/2 (r -> inf).
    """
    if r <= 0.0:
        return 0.0
    return (1.0 - math.tanh(r) / r) * (r - math.tanh(r / 2.0)) / (2.0 * r)


#: Upper end of the search interval for :func:`nac_init_range` (the answer if the target is out of reach).
NAC_INIT_R_MAX = 10.0
#: Largest target variance used by :func:`nac_init_range`; ``Var[W] < 1/2`` for every r, so Glorot's
#: ``2 / (fan_in + fan_out)`` is capped at 2/5 (i.e. ``fan_in + fan_out`` is treated as at least 5).
NAC_INIT_MAX_VARIANCE = 0.4


def nac_init_range(fan_in: int, fan_out: int) -> float:
    """``r`` such that ``W_hat, M_hat ~ U[-r, r]`` gives ``Var[W] = 2 / (fan_in + fan_out)`` (Glorot).

    Solved by bisection on :func:`nac_weight_variance` (the same criterion as Madsen & Johansen's
    stable-nalu initialisation). The target is capped at ``NAC_INIT_MAX_VARIANCE`` because the variance
    of ``tanh * sigmoid`` can never reach 1/2.
    """
    target = min(2.0 / (fan_in + fan_out), NAC_INIT_MAX_VARIANCE)
    lo, hi = 0.0, NAC_INIT_R_MAX
    if nac_weight_variance(hi) <= target:
        return hi
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if nac_weight_variance(mid) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def clamp_(t: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """In-place ``t.clamp_(low, high)``, written as ``clamp_min_`` then ``clamp_max_`` (the same values),
    because ``torch.func.vmap`` has batching rules for those two but not for ``clamp_``: the replica
    engine projects the stacked weights of many models in one call (``units.project_``)."""
    return t.clamp_min_(low).clamp_max_(high)


def box(t: torch.Tensor, low: float, high: float, grad_at_bounds: bool = False) -> torch.Tensor:
    """``t`` clamped to ``[low, high]`` for the forward pass of a unit whose weights ``project_()`` keeps
    in that box.

    ``grad_at_bounds=False``: ``torch.clamp``, whose gradient is 0 at the bounds themselves (torch 2.x),
    so a weight that the projection has put exactly on a bound gets no gradient again. ``True``: the
    clamped value with the identity's gradient (``t + (clamp(t) - t).detach()``), which is what the
    authors' code computes (``nac_oob='clip'`` in ``stable-nalu`` / ``nalm-division``: the forward uses
    the projected weight itself), so a weight on a bound can leave it when the loss asks.
    """
    clamped = torch.clamp(t, low, high)
    return t + (clamped - t).detach() if grad_at_bounds else clamped


def bounded_exp(z: torch.Tensor, max_exponent: float = MAX_EXPONENT) -> torch.Tensor:
    """``exp(min(z, max_exponent))``; the clamp is a project addition (see module docstring)."""
    return torch.exp(torch.clamp(z, max=max_exponent))


def parity_sign(count: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``(-1) ** count`` as ``dtype``: the sign of a product with ``count`` (whole) negative factors."""
    # a float count: count - 2 floor(count / 2), exact for whole numbers (torch.remainder calls fmod, which
    # compiled code recomputes per element of iNALU's weight gradient: about 3 ms of a 9 ms step)
    odd = count - 2 * torch.floor(count * 0.5) if count.is_floating_point() else count & 1
    return 1 - 2 * odd.to(dtype)


def _prod_parts(f: torch.Tensor, max_exponent: float):
    """The bounded product over the last dimension and what its gradient reuses: ``y``, ``log|f|``
    (0 at zero factors), their sum ``L``, the number of zero factors and the sign of the product.

    ``y = prod_i f_i`` where ``L = sum_i log|f_i| <= max_exponent`` and ``torch.prod`` neither over- nor
    underflowed (the direct product: bit-exact for small integers); otherwise
    ``y = sign * exp(min(L, max_exponent))`` with ``sign`` the parity of the negative factors. Any zero
    factor gives ``y = 0`` exactly.
    """
    is_zero = f == 0
    n_zero = is_zero.sum(dim=-1)
    log_abs = torch.where(
        is_zero, torch.zeros_like(f), torch.where(is_zero, torch.ones_like(f), f).abs().log()
    )
    total = log_abs.sum(dim=-1)
    n_neg = (f < 0).sum(dim=-1)
    sign = parity_sign(n_neg, f.dtype)
    direct = torch.prod(f, dim=-1)
    bounded = sign * torch.exp(torch.clamp(total, max=max_exponent))
    # the direct product is preferred (exact for small integers) unless it over- or underflowed
    use_direct = torch.isfinite(direct) & (direct != 0) & (total <= max_exponent)
    y = torch.where(n_zero > 0, torch.zeros_like(direct), torch.where(use_direct, direct, bounded))
    return y, log_abs, total, n_zero, sign


def _prod_gradient(f, log_abs, total, n_zero, sign, max_exponent: float) -> torch.Tensor:
    """``dy/df_i = prod_{k != i} f_k`` of :func:`_prod_parts`'s ``y``, in log-space with explicit zero
    handling, so zero factors never produce ``0 * inf`` or ``0 / 0`` (``torch.prod`` is exact for zeros
    but overflows for large factors):

    * no zero factor: ``sign * sign(f_i) * exp(L - log|f_i|)`` where ``L <= max_exponent``; zero where the
      forward was clamped (``L > max_exponent``), as ``torch.clamp`` would give;
    * exactly one zero factor ``f_z``: only ``dy/df_z`` is non-zero (the product of the others);
    * two or more zero factors: all zero.

    The exclusive-product exponent is also clamped at ``max_exponent`` (it can exceed ``L`` when some
    ``|f_i| < 1``), which bounds the gradient at ``e**max_exponent`` per factor.
    """
    is_zero = f == 0
    others_log = torch.clamp(total.unsqueeze(-1) - log_abs, max=max_exponent)
    others_sign = torch.where(is_zero, sign.unsqueeze(-1), sign.unsqueeze(-1) * torch.sign(f))
    no_zero_ok = ((n_zero == 0) & (total <= max_exponent)).unsqueeze(-1)
    one_zero_ok = (n_zero == 1).unsqueeze(-1) & is_zero
    valid = no_zero_ok | one_zero_ok
    return torch.where(valid, others_sign * torch.exp(others_log), torch.zeros_like(f))


class _BoundedProd(torch.autograd.Function):
    """:func:`_prod_parts` forward, :func:`_prod_gradient` backward (eager code).

    Works under ``torch.func.vmap`` (the replica engine trains many models as one batched computation):
    every step acts on the last dimension only, so the batching rule moves the vmapped dimension to the
    front and applies the function once (``vmap`` staticmethod below).
    """

    @staticmethod
    def forward(f: torch.Tensor, max_exponent: float):  # type: ignore[override]
        """Returns ``y`` and the intermediates the backward reuses (marked non-differentiable)."""
        return _prod_parts(f, max_exponent)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        f, max_exponent = inputs
        _, log_abs, total, n_zero, sign = output
        ctx.mark_non_differentiable(log_abs, total, n_zero, sign)
        ctx.save_for_backward(f, log_abs, total, n_zero, sign)
        ctx.max_exponent = max_exponent

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: torch.Tensor, *_unused):  # type: ignore[override]
        f, log_abs, total, n_zero, sign = ctx.saved_tensors
        return grad_y.unsqueeze(-1) * _prod_gradient(f, log_abs, total, n_zero, sign, ctx.max_exponent), None

    @staticmethod
    def vmap(info, in_dims, f: torch.Tensor, max_exponent: float):  # type: ignore[override]
        f_dim = in_dims[0]
        if f_dim is None:
            return _BoundedProd.apply(f, max_exponent), (None,) * 5
        return _BoundedProd.apply(f.movedim(f_dim, 0), max_exponent), (0,) * 5


def _bounded_prod_linearised(f: torch.Tensor, max_exponent: float) -> torch.Tensor:
    """:func:`_prod_parts`'s ``y`` with :func:`_prod_gradient` attached as plain autograd:
    ``y + sum_i g_i (f_i - stop_grad(f_i))`` has the value ``y`` and the gradient ``g``.

    For ``torch.compile``: inside a functorch transform (the replica engine's ``vmap``) dynamo traces an
    ``autograd.Function``'s forward and differentiates that instead of calling its backward
    (torch 2.14), which loses the gradient of a zero factor (tested in tests/replicas/test_compiled.py);
    plain operations compile as written, and inductor fuses them.
    """
    constant = f.detach()
    parts = _prod_parts(constant, max_exponent)
    if not torch.is_grad_enabled():  # evaluation (no_grad): no gradient to attach, none to compute
        return parts[0]
    gradient = _prod_gradient(constant, *parts[1:], max_exponent)
    return parts[0] + (gradient * (f - constant)).sum(dim=-1)


def bounded_prod(f: torch.Tensor, max_exponent: float = MAX_EXPONENT) -> torch.Tensor:
    """``prod(f, dim=-1)`` with ``|result| <= e**max_exponent`` and finite gradients: :func:`_prod_parts`
    with the gradient :func:`_prod_gradient` (``_BoundedProd``; traced by ``torch.compile`` as
    :func:`_bounded_prod_linearised`)."""
    if torch.compiler.is_compiling():
        return _bounded_prod_linearised(f, max_exponent)
    return _BoundedProd.apply(f, max_exponent)[0]
