"""Training fast path: a hand-written backward pass through time (TorchScript).

:class:`LIFSequenceFunction` runs the forward with
:func:`~lif_export.fast.simulate.simulate_into`, keeping only ``u`` of every
step, and the backward as one scripted loop. It reproduces what autograd
computes for :func:`lif_export.functional.lif_sequence` operation for
operation (the surrogate's ``grad * isfinite(z * g) * g``, the zero reset's
``where(fired, 0, grad)``, ``grad * beta`` into the previous state), so the
gradients for ``x`` and ``v0`` equal eager autograd's bit for bit.

It covers fixed parameters (``beta``, ``threshold`` not learned); a module with
learned parameters takes the autograd path.
"""

from typing import Any

import torch
from torch import Tensor

from ..surrogate import surrogate_grad
from .simulate import simulate_into


@torch.jit.script
def backward_through_time(
    u_trace: Tensor,
    grad_spikes: Tensor | None,
    grad_v: Tensor | None,
    beta: Tensor,
    threshold: Tensor,
    reset: str,
    surrogate: str,
    alpha: float,
) -> tuple[Tensor, Tensor | None]:
    """``(grad_x[T, *], grad_u0)`` from the stored ``u`` of every step.

    ``grad_u0`` is the gradient of the first step's ``u``; the caller turns it
    into the initial state's gradient (which depends on how ``beta * v0``
    broadcast).

    ``None`` incoming gradients mean "this output was not used", as in
    autograd, which then runs no backward for it (and so adds no ``+0``).
    """
    steps = u_trace.size(0)
    grad_x = torch.empty_like(u_trace)
    grad_state = grad_v
    grad_u0: Tensor | None = None
    for i in range(steps):
        t = steps - 1 - i
        u = u_trace[t]
        grad_u: Tensor | None = None
        if grad_spikes is not None:
            z = u - threshold
            g = torch.nan_to_num(surrogate_grad(z, surrogate, alpha), nan=0.0)
            # NanToNumBackward: grad * isfinite(input); MulBackward: grad * g.
            grad_u = grad_spikes[t] * torch.isfinite(z * g) * g
        if grad_state is not None:
            from_state = torch.where(u > threshold, 0.0, grad_state) if reset == "zero" else grad_state
            grad_u = from_state if grad_u is None else from_state + grad_u
        if grad_u is None:
            grad_u = torch.zeros_like(u)
        grad_x[t] = grad_u
        if t > 0:
            grad_state = grad_u * beta  # MulBackward of beta * v: grad * beta
        else:
            grad_u0 = grad_u
    return grad_x, grad_u0


class LIFSequenceFunction(torch.autograd.Function):
    """``(x[T, *], v0[*]) -> (spikes[T, *], v_T)`` with the hand-written backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, v0: Tensor, beta: Tensor, threshold: Tensor, v_reset: Tensor,
                reset: str, surrogate: str, alpha: float) -> tuple[Tensor, Tensor]:
        ctx.set_materialize_grads(False)
        spikes = torch.empty_like(x)
        u_trace = torch.empty_like(x)
        v = v0.expand(x.shape[1:]).clone()
        simulate_into(x.contiguous(), v, beta, threshold, v_reset, reset, spikes, u_trace=u_trace)
        ctx.save_for_backward(u_trace, beta, threshold)
        ctx.config = (reset, surrogate, alpha, v0.shape)
        return spikes, v

    @staticmethod
    def backward(ctx: Any, grad_spikes: Tensor | None, grad_v: Tensor | None):
        u_trace, beta, threshold = ctx.saved_tensors
        reset, surrogate, alpha, v0_shape = ctx.config
        grad_x, grad_u0 = backward_through_time(u_trace, grad_spikes, grad_v, beta, threshold, reset,
                                                surrogate, alpha)
        grad_v0 = None
        if grad_u0 is not None and ctx.needs_input_grad[1]:
            # As autograd: AddBackward reduces to beta*v0's shape, MulBackward multiplies by beta,
            # then the result is reduced to v0's shape.
            product_shape = torch.broadcast_shapes(beta.shape, v0_shape)
            grad_v0 = (grad_u0.sum_to_size(product_shape) * beta).sum_to_size(v0_shape)
        return grad_x if ctx.needs_input_grad[0] else None, grad_v0, None, None, None, None, None, None
