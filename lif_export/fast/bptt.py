"""Training fast path: a hand-written backward pass through time.

:class:`LIFSequenceFunction` runs the forward with
:func:`~lif_export.fast.simulate.simulate_into`, keeping only ``u`` of every
step, and the backward as one loop over the steps (the compiled kernel of
:mod:`~lif_export.fast.kernel`, or :func:`backward_through_time` in TorchScript).
It reproduces what autograd computes for :func:`lif_export.functional.lif_sequence`
operation for operation, so every gradient equals eager autograd's bit for bit:

* ``x`` and ``v0``: the surrogate's ``grad * isfinite(z * g) * g`` (computed for all steps
  at once in the reference, elementwise the same), the zero reset's ``where(fired, 0, grad)``,
  ``grad * beta`` into the previous state;
* a learned ``beta``: every step's ``(grad u_t * v_(t-1))`` reduced to ``beta``'s shape, added
  up from the last step to the first (the order autograd's engine accumulates them in);
* a learned ``threshold``: the surrogate's ``-grad`` reduced over all steps at once (that
  node runs first in the reference), then the subtract reset's ``(-grad v_t) * s_t`` per step,
  from the last to the first.

Memory: the forward saves one tensor of ``x``'s size, ``u`` (besides the parameters and ``v0``); the
backward allocates ``grad_x`` and, with learned parameters, one more ``[T, *]`` buffer, filled with
each parameter's per-step terms in turn (:func:`parameter_terms_into`) and freed when it returns.
"""

from typing import Any

import torch
from torch import Tensor

from ..surrogate import surrogate_grad
from .kernel import run_backward, run_parts
from .simulate import simulate_into


@torch.jit.script
def backward_through_time(
    u_trace: Tensor,
    grad_spikes: Tensor | None,
    grad_v: Tensor | None,
    beta: Tensor,
    threshold: Tensor,
    v_reset: Tensor,
    reset: str,
    surrogate: str,
    alpha: float,
    spike_part: Tensor | None,
) -> Tensor:
    """``grad_x[T, *]``, the gradient of every step's ``u``, from the stored ``u`` of every step.

    ``grad_x[0]`` is the gradient of the first step's ``u``; the caller turns it
    into the initial state's gradient (which depends on how ``beta * v0``
    broadcast). ``spike_part`` (``[T, *]``), when given, receives the surrogate's part
    of every ``grad u_t``, negated (the learned threshold's term: autograd's SubBackward
    negates it before the sum).

    ``None`` incoming gradients mean "this output was not used", as in
    autograd, which then runs no backward for it (and so adds no ``+0``).
    """
    steps = u_trace.size(0)
    grad_x = torch.empty_like(u_trace)
    grad_state = grad_v
    for i in range(steps):
        t = steps - 1 - i
        u = u_trace[t]
        grad_u: Tensor | None = None
        if grad_spikes is not None:
            z = u - threshold
            g = torch.nan_to_num(surrogate_grad(z, surrogate, alpha), nan=0.0)
            # NanToNumBackward: grad * isfinite(input); MulBackward: grad * g.
            grad_u = grad_spikes[t] * torch.isfinite(z * g) * g
            if spike_part is not None:
                torch.neg(grad_u, out=spike_part[t])
        if grad_state is not None:
            fired = u > threshold
            from_state = torch.where(fired, 0.0, grad_state) if reset == "zero" else grad_state
            grad_u = from_state if grad_u is None else from_state + grad_u
        if grad_u is None:
            grad_u = torch.zeros_like(u)
        grad_x[t] = grad_u
        if t > 0:
            grad_state = grad_u * beta  # MulBackward of beta * v: grad * beta
    return grad_x


@torch.jit.script
def parameter_terms_into(
    u_trace: Tensor,
    grad_x: Tensor,
    grad_v: Tensor | None,
    beta: Tensor,
    threshold: Tensor,
    v_reset: Tensor,
    reset: str,
    kind: str,
    out: Tensor,
) -> None:
    """A learned parameter's per-step terms into ``out[T, *]``, from ``grad_x`` (every ``grad u_t``).

    ``kind="beta"``: ``out[t] = grad u_t * v_(t-1)`` for ``t >= 1`` (``v`` recomputed from ``u``;
    row 0 is left alone, ``v_(-1)`` being the initial state). ``kind="reset"`` (the subtract reset's
    threshold term): ``out[t] = (-grad v_t) * s_t``, ``grad v_t = grad u_(t+1) * beta`` or ``grad_v`` at
    the last step (that row left alone without ``grad_v``). Elementwise, all steps at once: the
    same operations as autograd's per step, so the same bits.
    """
    steps = u_trace.size(0)
    if kind == "beta":
        previous = u_trace[: steps - 1]
        if reset == "zero":
            v_previous = torch.where(previous > threshold, v_reset, previous)
        elif reset == "subtract":
            v_previous = previous - (previous > threshold).to(u_trace.dtype) * threshold
        else:
            v_previous = previous
        torch.mul(grad_x[1:], v_previous, out=out[1:])
    else:
        fired = (u_trace > threshold).to(u_trace.dtype)
        torch.mul(-(grad_x[1:] * beta), fired[: steps - 1], out=out[: steps - 1])
        if grad_v is not None:
            torch.mul(-grad_v, fired[steps - 1], out=out[steps - 1])


def _added_up(terms: list[Tensor]) -> Tensor | None:
    """``((t0 + t1) + t2) + ...``, as autograd accumulates the gradients reaching one tensor."""
    total: Tensor | None = None
    for term in terms:
        total = term if total is None else total + term
    return total


class LIFSequenceFunction(torch.autograd.Function):
    """``(x[T, *], v0[*]) -> (spikes[T, *], v_T)`` with the hand-written backward (gradients for
    ``x``, ``v0``, ``beta`` and ``threshold``)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, v0: Tensor, beta: Tensor, threshold: Tensor, v_reset: Tensor,
                reset: str, surrogate: str, alpha: float) -> tuple[Tensor, Tensor]:
        ctx.set_materialize_grads(False)
        x = x.contiguous()
        spikes = torch.empty_like(x)
        u_trace = torch.empty_like(x)
        v = v0.expand(x.shape[1:]).clone(memory_format=torch.contiguous_format)
        simulate_into(x, v, beta, threshold, v_reset, reset, spikes, u_trace=u_trace)
        ctx.save_for_backward(u_trace, v0, beta, threshold, v_reset)
        ctx.config = (reset, surrogate, alpha)
        return spikes, v

    @staticmethod
    def backward(ctx: Any, grad_spikes: Tensor | None, grad_v: Tensor | None):
        u_trace, v0, beta, threshold, v_reset = ctx.saved_tensors
        reset, surrogate, alpha = ctx.config
        need_beta, need_threshold = ctx.needs_input_grad[2], ctx.needs_input_grad[3]
        grad_spikes = None if grad_spikes is None else grad_spikes.contiguous()
        grad_v = None if grad_v is None else grad_v.expand(u_trace.shape[1:]).contiguous()
        # One [T, *] buffer for every learned parameter's per-step terms, one kind after the other.
        threshold_kinds = (grad_spikes is not None, reset == "subtract")  # its surrogate and reset terms
        terms = torch.empty_like(u_trace) if need_beta or (need_threshold and any(threshold_kinds)) else None
        spike_part = terms if need_threshold and threshold_kinds[0] else None
        grad_x = run_backward(u_trace, grad_spikes, grad_v, beta, threshold, v_reset, reset, surrogate, alpha,
                              spike_part)
        if grad_x is None:
            grad_x = backward_through_time(u_trace, grad_spikes, grad_v, beta, threshold, v_reset, reset, surrogate,
                                           alpha, spike_part)
        steps = u_trace.size(0)
        grad_v0 = None
        if ctx.needs_input_grad[1]:
            # As autograd: AddBackward reduces to beta*v0's shape, MulBackward multiplies by beta,
            # then the result is reduced to v0's shape.
            product_shape = torch.broadcast_shapes(beta.shape, v0.shape)
            grad_v0 = (grad_x[0].sum_to_size(product_shape) * beta).sum_to_size(v0.shape)
        # The surrogate's threshold term first: that node runs first in the reference.
        threshold_terms = [] if spike_part is None else [spike_part.sum_to_size(threshold.shape)]
        grad_beta = None
        if need_beta:
            assert terms is not None
            _terms_into(u_trace, grad_x, grad_v, beta, threshold, v_reset, reset, "beta", terms)
            grad_beta = _added_up([terms[t].sum_to_size(beta.shape) for t in range(steps - 1, 0, -1)]
                                  + [(grad_x[0] * v0).sum_to_size(beta.shape)])
        grad_threshold = None
        if need_threshold:
            if threshold_kinds[1]:
                assert terms is not None
                _terms_into(u_trace, grad_x, grad_v, beta, threshold, v_reset, reset, "reset", terms)
                last = steps - 1 if grad_v is not None else steps - 2
                threshold_terms += [terms[t].sum_to_size(threshold.shape) for t in range(last, -1, -1)]
            grad_threshold = _added_up(threshold_terms)
        return (grad_x if ctx.needs_input_grad[0] else None, grad_v0, grad_beta, grad_threshold,
                None, None, None, None)


def _terms_into(u_trace: Tensor, grad_x: Tensor, grad_v: Tensor | None, beta: Tensor, threshold: Tensor,
                v_reset: Tensor, reset: str, kind: str, out: Tensor) -> None:
    """:func:`parameter_terms_into` by the compiled kernel when it can, else in PyTorch."""
    if not run_parts(u_trace, grad_x, grad_v, beta, threshold, v_reset, reset, kind, out):
        parameter_terms_into(u_trace, grad_x, grad_v, beta, threshold, v_reset, reset, kind, out)
