"""Choosing the fast path for an eager ``LIFSequence`` call, or none."""

import torch
from torch import Tensor

from ..functional import check_step_inputs
from .bptt import LIFSequenceFunction
from .simulate import simulate


def fast_sequence(
    x: Tensor,
    v0: Tensor,
    beta: Tensor,
    threshold: Tensor,
    v_reset: Tensor,
    reset: str,
    surrogate: str,
    alpha: float,
    return_trace: bool,
    out: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor | None] | None:
    """The result of ``lif_sequence`` by a fast path, bit for bit, or ``None`` if none applies.

    No autograd needed: :func:`simulate` (the spikes into ``out`` if given). Gradients (for ``x``,
    ``v0``, learned ``beta`` and ``threshold``) without a trace: :class:`LIFSequenceFunction`. A trace
    or ``out`` with gradients, a ``v_reset`` that needs one or an empty sequence: ``None``, the caller
    runs the autograd loop.
    """
    if x.dim() < 1 or x.dtype not in (torch.float32, torch.float64):
        return None
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or v0.requires_grad or beta.requires_grad or threshold.requires_grad
    )
    if not needs_grad:
        return simulate(x, v0, beta, threshold, v_reset, reset, out=out, return_trace=return_trace)
    if v_reset.requires_grad or return_trace or x.size(0) == 0 or out is not None:
        return None
    step_shape = list(x.shape[1:])
    check_step_inputs(x, step_shape, v0, beta, threshold, v_reset, reset)
    dtype = x.dtype
    spikes, v = LIFSequenceFunction.apply(
        x, v0, beta.to(dtype), threshold.to(dtype), v_reset.to(dtype), reset, surrogate, alpha
    )
    return spikes, v, None
