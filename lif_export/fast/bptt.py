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
"""

from typing import Any

import torch
from torch import Tensor

from ..surrogate import surrogate_grad
from .kernel import run_backward
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
    reset_part: Tensor | None,
    beta_part: Tensor | None,
) -> Tensor:
    """``grad_x[T, *]``, the gradient of every step's ``u``, from the stored ``u`` of every step.

    ``grad_x[0]`` is the gradient of the first step's ``u``; the caller turns it
    into the initial state's gradient (which depends on how ``beta * v0``
    broadcast). Filled in when given (``[T, *]`` each): ``spike_part`` the
    surrogate's part of every ``grad u_t``; ``reset_part`` the subtract reset's
    ``(-grad v_t) * s_t`` (row ``T-1`` only with ``grad_v``); ``beta_part``
    ``grad u_t * v_(t-1)`` for ``t >= 1``.

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
                spike_part[t].copy_(grad_u)
        if grad_state is not None:
            fired = u > threshold
            if reset_part is not None:
                torch.mul(-grad_state, fired.to(u.dtype), out=reset_part[t])
            from_state = torch.where(fired, 0.0, grad_state) if reset == "zero" else grad_state
            grad_u = from_state if grad_u is None else from_state + grad_u
        if grad_u is None:
            grad_u = torch.zeros_like(u)
        grad_x[t] = grad_u
        if t > 0:
            grad_state = grad_u * beta  # MulBackward of beta * v: grad * beta
            if beta_part is not None:
                previous = u_trace[t - 1]
                hard = (previous > threshold).to(u.dtype)
                if reset == "zero":
                    v_previous = torch.where(previous > threshold, v_reset, previous)
                elif reset == "subtract":
                    v_previous = previous - hard * threshold
                else:
                    v_previous = previous
                torch.mul(grad_u, v_previous, out=beta_part[t])
    return grad_x


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
        parts = (need_threshold and grad_spikes is not None, need_threshold and reset == "subtract", need_beta)
        grad_spikes = None if grad_spikes is None else grad_spikes.contiguous()
        grad_v = None if grad_v is None else grad_v.expand(u_trace.shape[1:]).contiguous()
        result = run_backward(u_trace, grad_spikes, grad_v, beta, threshold, v_reset, reset, surrogate, alpha,
                              parts)
        if result is None:
            spike_part, reset_part, beta_part = (torch.empty_like(u_trace) if wanted else None for wanted in parts)
            grad_x = backward_through_time(u_trace, grad_spikes, grad_v, beta, threshold, v_reset, reset, surrogate,
                                           alpha, spike_part, reset_part, beta_part)
        else:
            grad_x, spike_part, reset_part, beta_part = result
        steps, grad_u0 = u_trace.size(0), grad_x[0]
        grad_v0 = None
        if ctx.needs_input_grad[1]:
            # As autograd: AddBackward reduces to beta*v0's shape, MulBackward multiplies by beta,
            # then the result is reduced to v0's shape.
            product_shape = torch.broadcast_shapes(beta.shape, v0.shape)
            grad_v0 = (grad_u0.sum_to_size(product_shape) * beta).sum_to_size(v0.shape)
        grad_beta = None
        if beta_part is not None:
            terms = [beta_part[t].sum_to_size(beta.shape) for t in range(steps - 1, 0, -1)]
            grad_beta = _added_up(terms + [(grad_x[0] * v0).sum_to_size(beta.shape)])
        grad_threshold = None
        if need_threshold:
            terms = [] if spike_part is None else [(-spike_part).sum_to_size(threshold.shape)]
            if reset_part is not None:
                last = steps - 1 if grad_v is not None else steps - 2
                terms += [reset_part[t].sum_to_size(threshold.shape) for t in range(last, -1, -1)]
            grad_threshold = _added_up(terms)
        return (grad_x if ctx.needs_input_grad[0] else None, grad_v0, grad_beta, grad_threshold,
                None, None, None, None)
