"""Pure, TorchScript-compatible LIF step and sequence functions (``docs/semantics.md``).

One time step, for input current ``x`` and membrane potential ``v``::

    u      = beta * v + x                     # a multiply, then an add (no FMA)
    s      = 1 if u > threshold else 0        # strictly greater; dtype of x
    v_next = v_reset where s else u           # reset="zero" (a select)
           = u - s * threshold                # reset="subtract"
           = u                                # reset="none"

Parameters ``beta``, ``threshold`` and ``v_reset`` are tensors: 0-dim for one
value shared by all neurons, or any shape that broadcasts to ``x`` for
per-neuron values. They are cast to ``x.dtype`` before use, so a float32 run
rounds them to float32 exactly as an exported float32 graph does.

All functions here compile with ``torch.jit.script``; the modules in
:mod:`lif_export.modules` are thin wrappers over them.
"""


import torch
from torch import Tensor

from .surrogate import surrogate_term


def broadcasts_to(shape: list[int], target: list[int]) -> bool:
    """Whether a tensor of ``shape`` broadcasts to ``target`` (without changing ``target``)."""
    if len(shape) > len(target):
        return False
    offset = len(target) - len(shape)
    for i in range(len(shape)):
        if shape[i] != 1 and shape[i] != target[offset + i]:
            return False
    return True


def _check_broadcast(name: str, shape: list[int], step_shape: list[int]) -> None:
    if not broadcasts_to(shape, step_shape):
        raise ValueError(
            name + " of shape " + str(list(shape)) + " cannot broadcast to the input shape "
            + str(list(step_shape))
        )


def dtype_name(dtype: torch.dtype) -> str:
    """``"float32"`` for ``torch.float32`` and so on, in eager and scripted code alike (scripted,
    ``str(dtype)`` is a number)."""
    if dtype == torch.float32:
        return "float32"
    if dtype == torch.float64:
        return "float64"
    if dtype == torch.float16:
        return "float16"
    if dtype == torch.bfloat16:
        return "bfloat16"
    if dtype == torch.int64:
        return "int64"
    if dtype == torch.int32:
        return "int32"
    if dtype == torch.bool:
        return "bool"
    return str(dtype).replace("torch.", "")


def check_step_inputs(
    x: Tensor,
    step_shape: list[int],
    v: Tensor,
    beta: Tensor,
    threshold: Tensor,
    v_reset: Tensor,
    reset: str,
) -> None:
    """Raise ``TypeError``/``ValueError`` naming the argument if a step cannot run.

    ``x`` is the input (one step or a whole sequence), ``step_shape`` the shape
    of one step of it, to which the state and parameters must broadcast.
    """
    if not x.is_floating_point():
        raise TypeError("x (input current) must be a floating-point tensor, got dtype " + dtype_name(x.dtype))
    if v.dtype != x.dtype:
        raise TypeError(
            "v (membrane potential) must have the dtype of x (" + dtype_name(x.dtype) + "), got "
            + dtype_name(v.dtype)
        )
    _check_broadcast("v (membrane potential)", list(v.shape), step_shape)
    _check_broadcast("beta", list(beta.shape), step_shape)
    _check_broadcast("threshold", list(threshold.shape), step_shape)
    _check_broadcast("v_reset", list(v_reset.shape), step_shape)
    if reset != "zero" and reset != "subtract" and reset != "none":
        raise ValueError("reset must be one of ['zero', 'subtract', 'none'], got '" + reset + "'")


def fire_and_reset(u: Tensor, threshold: Tensor, v_reset: Tensor, reset: str) -> tuple[Tensor, Tensor]:
    """``(hard spike, v_next)`` from the integrated potential ``u`` (no surrogate)."""
    fired = u > threshold
    spike = fired.to(u.dtype)
    if reset == "zero":
        v_next = torch.where(fired, v_reset, u)
    elif reset == "subtract":
        # The reset is detached: only the hard spike enters it.
        v_next = u - spike * threshold
    else:
        v_next = u
    return spike, v_next


def integrate(x: Tensor, v: Tensor, beta: Tensor) -> Tensor:
    """``u = beta * v + x``: a multiply, then an add (two roundings; torch never fuses these on CPU
    outside a compiler). The one place every neuron model integrates."""
    return beta * v + x


def integrate_and_fire(
    x: Tensor, v: Tensor, beta: Tensor, threshold: Tensor, v_reset: Tensor, reset: str
) -> tuple[Tensor, Tensor, Tensor]:
    """One step without the surrogate: ``(hard spike, v_next, u)``."""
    u = integrate(x, v, beta)
    spike, v_next = fire_and_reset(u, threshold, v_reset, reset)
    return spike, v_next, u


def lif_step_unchecked(
    x: Tensor,
    v: Tensor,
    beta: Tensor,
    threshold: Tensor,
    v_reset: Tensor,
    reset: str,
    surrogate: str,
    slope: float,
) -> tuple[Tensor, Tensor]:
    """:func:`lif_step` without argument checks or dtype casts."""
    spike, v_next, u = integrate_and_fire(x, v, beta, threshold, v_reset, reset)
    if u.requires_grad or threshold.requires_grad:
        spike = spike + surrogate_term(u, threshold, surrogate, slope)
    return spike, v_next


def clamp_learned(beta: Tensor, threshold: Tensor, learn_beta: bool, learn_threshold: bool,
                  min_threshold: float) -> tuple[Tensor, Tensor]:
    """Learned parameters as forward uses them: ``beta`` clamped to ``[0, 1]``, ``threshold`` to
    ``>= min_threshold``, so training can never leave the valid ranges. Fixed ones pass unchanged."""
    if learn_beta:
        beta = torch.clamp(beta, 0.0, 1.0)
    if learn_threshold:
        threshold = torch.clamp(threshold, min=min_threshold)
    return beta, threshold


def lif_step(
    x: Tensor,
    v: Tensor,
    beta: Tensor,
    threshold: Tensor,
    v_reset: Tensor,
    reset: str = "zero",
    surrogate: str = "fast_sigmoid",
    slope: float = 10.0,
) -> tuple[Tensor, Tensor]:
    """One LIF time step with explicit state.

    Args:
        x: input current, shape ``[*]`` (any shape), floating point.
        v: membrane potential, shape broadcastable to ``x`` (``[*]`` or 0-dim),
            same dtype as ``x``.
        beta: decay, 0-dim or per-neuron (broadcastable to ``x``), in ``[0, 1]``.
        threshold: firing threshold, 0-dim or per-neuron, finite and ``> 0``.
        v_reset: reset potential, 0-dim or per-neuron, finite.
        reset: ``"zero"``, ``"subtract"`` or ``"none"``.
        surrogate: surrogate-gradient name (see :mod:`lif_export.surrogate`).
        slope: the surrogate's slope/scale.

    Returns:
        ``(spike, v_next)``, both of shape ``[*]`` and dtype of ``x``.
    """
    check_step_inputs(x, list(x.shape), v, beta, threshold, v_reset, reset)
    dtype = x.dtype
    return lif_step_unchecked(
        x, v, beta.to(dtype), threshold.to(dtype), v_reset.to(dtype), reset, surrogate, slope
    )


def lif_sequence(
    x: Tensor,
    v0: Tensor,
    beta: Tensor,
    threshold: Tensor,
    v_reset: Tensor,
    reset: str = "zero",
    surrogate: str = "fast_sigmoid",
    slope: float = 10.0,
    return_trace: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Run :func:`lif_step` over the leading (time) dimension of ``x``.

    Bit-identical to ``T`` calls of :func:`lif_step`; a run split into chunks
    with the state carried equals the unsplit run.

    Args:
        x: input currents, shape ``[T, *]``; ``T`` may be 0.
        v0: initial membrane potential, broadcastable to ``[*]``.
        return_trace: also return the potential after every step.
        (other arguments as in :func:`lif_step`)

    Returns:
        ``(spikes, v_T, v_trace)``: spikes ``[T, *]``, final potential ``[*]``,
        and the trace ``[T, *]`` (``v_trace[t]`` is the state after step ``t``)
        or ``None``.
    """
    if x.dim() < 1:
        raise ValueError("x must have a leading time dimension [T, ...], got a 0-dim tensor")
    step_shape = list(x.shape[1:])
    check_step_inputs(x, step_shape, v0, beta, threshold, v_reset, reset)
    dtype = x.dtype
    beta = beta.to(dtype)
    threshold = threshold.to(dtype)
    v_reset = v_reset.to(dtype)
    v = v0.expand(step_shape).clone() if x.size(0) == 0 else v0
    spikes: list[Tensor] = []
    potentials: list[Tensor] = []  # u of every step, when a gradient is needed
    trace: list[Tensor] = []
    # unbind, not x[t]: the backward of x[t] is a zero-filled [T, ...] tensor per step
    # (quadratic in T); unbind's is one stack.
    for x_t in x.unbind(0):
        spike, v, u = integrate_and_fire(x_t, v, beta, threshold, v_reset, reset)
        spikes.append(spike)
        if u.requires_grad or threshold.requires_grad:
            potentials.append(u)
        if return_trace:
            trace.append(v)
    out = torch.stack(spikes) if len(spikes) > 0 else torch.empty_like(x)
    if len(potentials) > 0:
        # The surrogate for all steps at once: a few large operations instead of many small ones.
        out = out + surrogate_term(torch.stack(potentials), threshold, surrogate, slope)
    if not return_trace:
        return out, v, None
    v_trace = torch.stack(trace) if len(trace) > 0 else torch.empty_like(x)
    return out, v, v_trace
