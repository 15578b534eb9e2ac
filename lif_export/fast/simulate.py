"""Forward simulation without autograd, in preallocated buffers (TorchScript).

Bit-identical to :func:`lif_export.functional.lif_sequence`: the same kernels
in the same order (``beta * v``, then ``+ x``, ``>``, multiply-subtract),
written into reused buffers instead of fresh tensors. Two kernels are swapped
for faster ones with the same bits, because PyTorch's bool kernels are 4-5x
slower than its float and integer ones on CPU:

* the spike is ``torch.gt`` written straight into the float output (1.0/0.0);
* the zero reset's select is done on the bit patterns (the float tensors
  viewed as integers): ``v = u ^ ((u ^ v_reset) * fired)`` with ``fired``
  the integer 1 or 0, read off the spike's bits (1.0 is ``0x3F800000``, so
  shifting right by 29 gives 1; 0.0 gives 0). That copies bits, so it is
  exactly a select: NaN payloads and signed zeros pass through, an infinite
  ``u`` resets.
"""

import torch
from torch import Tensor

from ..functional import check_step_inputs


def bit_view(t: Tensor) -> Tensor:
    """The same memory as integers of the same width (float32 -> int32, float64 -> int64)."""
    return t.view(torch.int32 if t.dtype == torch.float32 else torch.int64)


@torch.jit.script
def _simulate_loop(
    x: Tensor,
    v: Tensor,
    v_bits: Tensor,
    u: Tensor,
    u_bits: Tensor,
    fired: Tensor,
    spike_bits: Tensor,
    beta: Tensor,
    threshold: Tensor,
    v_reset_bits: Tensor,
    reset: str,
    spikes: Tensor,
    u_trace: Tensor | None,
    v_trace: Tensor | None,
) -> None:
    # TorchScript cannot take a dtype view, so the integer views come in as arguments.
    for t in range(x.size(0)):
        torch.mul(beta, v, out=u)
        u.add_(x[t])  # the same add kernel as ``beta * v + x``
        torch.gt(u, threshold, out=spikes[t])
        if u_trace is not None:
            u_trace[t].copy_(u)
        if reset == "zero":
            # 1.0 has the exponent bits 0b0111111..., so bit (width - 3) is set; 0.0 has none.
            torch.bitwise_right_shift(spike_bits[t], spike_bits.element_size() * 8 - 3, out=fired)
            torch.bitwise_xor(u_bits, v_reset_bits, out=v_bits)
            v_bits.mul_(fired)
            v_bits.bitwise_xor_(u_bits)
        elif reset == "subtract":
            torch.mul(spikes[t], threshold, out=v)
            torch.sub(u, v, out=v)
        else:
            v.copy_(u)
        if v_trace is not None:
            v_trace[t].copy_(v)


def simulate_into(
    x: Tensor,
    v: Tensor,
    beta: Tensor,
    threshold: Tensor,
    v_reset: Tensor,
    reset: str,
    spikes: Tensor,
    u_trace: Tensor | None = None,
    v_trace: Tensor | None = None,
) -> Tensor:
    """Run ``x[T, *]`` from state ``v`` (updated in place), writing ``spikes[T, *]``.

    ``u_trace``, if given, receives the integrated potential ``u`` of every
    step (what a hand-written backward pass needs), ``v_trace`` the state
    after every step. Parameters must already
    have ``x``'s dtype; ``v`` must be contiguous with the step shape.
    Returns ``v`` (the final state).
    """
    u = torch.empty_like(v)
    fired = torch.empty_like(bit_view(v))
    _simulate_loop(x, v, bit_view(v), u, bit_view(u), fired, bit_view(spikes), beta, threshold,
                   bit_view(v_reset.contiguous()), reset, spikes, u_trace, v_trace)
    return v


def simulate(
    x: Tensor,
    v0: Tensor | None,
    beta: Tensor,
    threshold: Tensor,
    v_reset: Tensor,
    reset: str = "zero",
    out: Tensor | None = None,
    return_trace: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Fast forward over a sequence, no autograd: ``(spikes[T, *], v_T, v_trace or None)``.

    Equal bit for bit to :func:`lif_export.functional.lif_sequence`.

    Args:
        x: ``[T, *]`` input currents.
        v0: initial state broadcastable to ``[*]`` (``None``: zeros).
        out: optional preallocated ``[T, *]`` tensor for the spikes; reusing one
            across calls avoids page-faulting a fresh output every time.
        return_trace: also return the state after every step, ``[T, *]``.
    """
    if x.dim() < 1:
        raise ValueError("x must have a leading time dimension [T, ...], got a 0-dim tensor")
    step_shape = list(x.shape[1:])
    if v0 is None:
        v0 = torch.zeros(step_shape, dtype=x.dtype, device=x.device)
    check_step_inputs(x, step_shape, v0, beta, threshold, v_reset, reset)
    if out is None:
        out = torch.empty_like(x)
    elif out.shape != x.shape or out.dtype != x.dtype:
        raise ValueError(
            f"out must have x's shape {list(x.shape)} and dtype {x.dtype}, got {list(out.shape)} {out.dtype}"
        )
    dtype = x.dtype
    v = v0.expand(step_shape).clone()
    trace = torch.empty_like(x) if return_trace else None
    with torch.no_grad():
        simulate_into(x.contiguous(), v, beta.to(dtype), threshold.to(dtype), v_reset.to(dtype), reset, out,
                      v_trace=trace)
    return out, v, trace
