"""Forward simulation without autograd, in preallocated buffers.

Bit-identical to :func:`lif_export.functional.lif_sequence`. Two implementations:

* the compiled kernel (:mod:`~lif_export.fast.kernel`): one fused C loop per step, used
  when a C compiler is available (``implementation="auto"`` or ``"compiled"``);
* :func:`simulate_loop` (TorchScript, PyTorch operations only; also what a scripted
  ``LIFSequence`` runs when no gradient is needed, so a saved module runs it anywhere):
  the same kernels in the same order (``beta * v``, then ``+ x``, ``>``, multiply-subtract)
  written into reused buffers instead of fresh tensors.

The zero reset is a select, ``v_reset where fired else u``, exact for every value (NaN
payloads, signed zeros, an infinite ``u`` resets). ``torch.where`` does that but runs a scalar
loop, several times slower than PyTorch's vectorised float kernels, so when the threshold and
the reset potential are single values with ``threshold > 0`` finite and ``v_reset <= 0``
(``+0.0`` or negative; the default neuron) the loop builds the select from two or three
vectorised operations that are exact:

* ``w = clamp(u, max=threshold)``: a neuron that did not fire has ``u <= threshold`` (or NaN,
  which ``clamp`` returns with its payload), so ``w`` is ``u`` bit for bit; one that fired has
  ``w = threshold``, finite even when ``u = inf``;
* ``w + spike * (-threshold)``: fired, ``threshold - threshold = +0``; not fired, the term is
  ``-0.0`` (a negative number times ``+0``), and ``w + (-0.0)`` is ``w`` for every ``w``;
* ``+ spike * v_reset`` when ``v_reset < 0``: fired, ``+0 + v_reset``; not fired, again ``-0.0``.

(``spike`` is exactly 0 or 1, so the products are exact and a fused multiply-add inside
``add(alpha=...)`` changes nothing.) Anything else takes ``torch.where``.
"""

import math

import numpy as np
import torch
from torch import Tensor

from ..functional import check_step_inputs, dtype_name
from .kernel import run_kernel

IMPLEMENTATIONS = ("auto", "compiled", "torch")
#: From this size on, numpy's allocator asks for transparent huge pages (see :func:`huge_page_output`).
HUGE_PAGE_OUTPUT_BYTES = 1 << 22


def reset_by_clamp(threshold: Tensor, v_reset: Tensor) -> bool:
    """Whether the zero reset can be built from ``clamp`` and two adds (see the module docstring)."""
    if threshold.numel() != 1 or v_reset.numel() != 1:
        return False
    th = float(threshold.item())
    vr = float(v_reset.item())
    return math.isfinite(th) and th > 0.0 and math.isfinite(vr) and (vr < 0.0 or (
        vr == 0.0 and math.copysign(1.0, vr) > 0.0))


@torch.jit.script
def simulate_loop(
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
    """The PyTorch implementation of :func:`simulate_into` (TorchScript; no compiler needed)."""
    u = torch.empty_like(v)
    clamp = reset == "zero" and reset_by_clamp(threshold, v_reset)
    th = float(threshold.item()) if clamp else 0.0
    vr = float(v_reset.item()) if clamp else 0.0
    fired = torch.empty(v.shape, dtype=torch.bool, device=v.device)
    for t in range(x.size(0)):
        torch.mul(beta, v, out=u)
        u.add_(x[t])  # the same add kernel as ``beta * v + x``
        spike = spikes[t]
        torch.gt(u, threshold, out=spike)
        if u_trace is not None:
            u_trace[t].copy_(u)
        if reset == "zero":
            if clamp:
                torch.clamp(u, max=th, out=v)
                v.add_(spike, alpha=-th)
                if vr != 0.0:
                    v.add_(spike, alpha=vr)
            else:
                torch.gt(u, threshold, out=fired)
                torch.where(fired, v_reset, u, out=v)
        elif reset == "subtract":
            torch.mul(spike, threshold, out=v)
            torch.sub(u, v, out=v)
        else:
            v.copy_(u)
        if v_trace is not None:
            v_trace[t].copy_(v)
    return v


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
    implementation: str = "auto",
) -> Tensor:
    """Run ``x[T, *]`` from state ``v`` (updated in place), writing ``spikes[T, *]``.

    ``u_trace``, if given, receives the integrated potential ``u`` of every
    step (what a hand-written backward pass needs), ``v_trace`` the state
    after every step. Parameters must already
    have ``x``'s dtype; ``v`` must be contiguous with the step shape.
    ``implementation``: ``"auto"`` (the compiled kernel when available, else the PyTorch
    loop), ``"compiled"`` (raise if it is unavailable) or ``"torch"``.
    Returns ``v`` (the final state).
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {list(IMPLEMENTATIONS)}, got {implementation!r}")
    if implementation != "torch" and run_kernel(x, v, beta, threshold, v_reset, reset, spikes, u_trace, v_trace):
        return v
    if implementation == "compiled":
        from .kernel import compiled

        raise RuntimeError(f"the compiled kernel cannot run this call ({compiled().description}; it needs CPU "
                           "float32/float64 contiguous tensors)")
    return simulate_loop(x, v, beta, threshold, v_reset, reset, spikes, u_trace, v_trace)


def prepare(
    x: Tensor, v0: Tensor | None, beta: Tensor, threshold: Tensor, v_reset: Tensor, reset: str, return_trace: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """Checked inputs for a run: ``(v, beta, threshold, v_reset, v_trace buffer or None)``, ``v`` a
    contiguous copy of ``v0`` (zeros if ``None``) of the step shape, the parameters in ``x``'s dtype."""
    if x.dim() < 1:
        raise ValueError("x must have a leading time dimension [T, ...], got a 0-dim tensor")
    step_shape = list(x.shape[1:])
    if v0 is None:
        v0 = torch.zeros(step_shape, dtype=x.dtype, device=x.device)
    check_step_inputs(x, step_shape, v0, beta, threshold, v_reset, reset)
    dtype = x.dtype
    v = v0.expand(step_shape).clone(memory_format=torch.contiguous_format)
    trace = torch.empty_like(x, memory_format=torch.contiguous_format) if return_trace else None
    return v, beta.to(dtype), threshold.to(dtype), v_reset.to(dtype), trace


def output_buffer(x: Tensor, out: Tensor | None) -> Tensor:
    """Where the spikes of ``x[T, *]`` go: ``out`` (checked: ``x``'s shape and dtype), or a new tensor
    (``torch.empty``: every element is written)."""
    if out is None:
        return torch.empty_like(x, memory_format=torch.contiguous_format)
    if out.shape != x.shape or out.dtype != x.dtype:
        raise ValueError("out must have x's shape " + str(list(x.shape)) + " and dtype " + dtype_name(x.dtype)
                         + ", got " + str(list(out.shape)) + " " + dtype_name(out.dtype))
    return out


def huge_page_output(x: Tensor) -> Tensor | None:
    """A new output like ``x`` from numpy's allocator when ``x`` is a large float32/float64 CPU tensor
    (else ``None``). numpy asks the kernel for transparent huge pages on allocations of 4 MB and more
    (``madvise``), so writing the output takes one page fault per 2 MB instead of one per 4 KB, which
    on a virtual machine costs several times the simulation itself (PyTorch's allocator does the same
    with ``THP_MEM_ALLOC_ENABLE=1``). The tensor shares the array's memory and keeps it alive."""
    if x.device.type != "cpu" or x.numel() * x.element_size() < HUGE_PAGE_OUTPUT_BYTES or x.dtype not in (
            torch.float32, torch.float64):
        return None
    return torch.from_numpy(np.empty(tuple(x.shape), dtype=np.float32 if x.dtype == torch.float32 else np.float64))


def simulate_script(
    x: Tensor, v0: Tensor | None, beta: Tensor, threshold: Tensor, v_reset: Tensor, reset: str, return_trace: bool,
    out: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """:func:`simulate` with the PyTorch loop, TorchScript-compatible: what a scripted ``LIFSequence``
    runs when no gradient is needed (``out``: as in :func:`simulate`)."""
    v, beta, threshold, v_reset, trace = prepare(x, v0, beta, threshold, v_reset, reset, return_trace)
    spikes = output_buffer(x, out)
    simulate_loop(x.contiguous(), v, beta, threshold, v_reset, reset, spikes, None, trace)
    return spikes, v, trace


def simulate(
    x: Tensor,
    v0: Tensor | None,
    beta: Tensor,
    threshold: Tensor,
    v_reset: Tensor,
    reset: str = "zero",
    out: Tensor | None = None,
    return_trace: bool = False,
    implementation: str = "auto",
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Fast forward over a sequence, no autograd: ``(spikes[T, *], v_T, v_trace or None)``.

    Equal bit for bit to :func:`lif_export.functional.lif_sequence`.

    Args:
        x: ``[T, *]`` input currents.
        v0: initial state broadcastable to ``[*]`` (``None``: zeros).
        out: optional preallocated ``[T, *]`` tensor for the spikes; reusing one
            across calls avoids page-faulting a fresh output every time.
        return_trace: also return the state after every step, ``[T, *]``.
        implementation: ``"auto"`` (default: the compiled kernel, or the PyTorch loop when no C
            compiler is available), ``"compiled"`` or ``"torch"``; all give the same bits.
    """
    v, beta, threshold, v_reset, trace = prepare(x, v0, beta, threshold, v_reset, reset, return_trace)
    out = output_buffer(x, out if out is not None else huge_page_output(x))
    with torch.no_grad():
        simulate_into(x.contiguous(), v, beta, threshold, v_reset, reset, out, v_trace=trace,
                      implementation=implementation)
    return out, v, trace
