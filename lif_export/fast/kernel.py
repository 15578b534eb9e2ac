"""The compiled kernels (``lif_kernel.c``) behind :func:`~lif_export.fast.simulate`, the
hand-written backward of :class:`~lif_export.fast.LIFSequenceFunction` and the eager step of
:class:`~lif_export.network.ExactLinear` without autograd (:class:`ExactLinearPlan`).

Forward: one fused loop per time step instead of seven PyTorch kernels: the input is read once and
the spikes written once, so the simulation runs at the speed of the native reference. Backward: the
recurrence through time in one loop per step instead of a dozen PyTorch kernels. Both compute the
same operations in the same order as autograd on :func:`lif_export.functional.lif_sequence` (see the
C file), so they give the same bits; the PyTorch loops are the fallback when no C compiler is
available (and for the ``sigmoid`` surrogate, which needs PyTorch's ``exp``).
"""

from __future__ import annotations

import ctypes
import functools
import math

import torch
from torch import Tensor

from .ccompile import Compiled, load

RESETS = {"zero": 0, "subtract": 1, "none": 2}
#: The surrogates the backward kernel computes (IEEE arithmetic only), by their number in the C file.
SURROGATES = {"fast_sigmoid": 0, "arctan": 1, "triangle": 2, "straight_through": 3}
#: The learned parameters' per-step terms ``lif_backward_*_parts`` computes, by their number in the C file.
PART_KINDS = {"beta": 0, "reset": 1}
_SUFFIXES = {torch.float32: ("f32", ctypes.c_float), torch.float64: ("f64", ctypes.c_double)}
#: What ``exact_linear_*`` returns (the C file's enum): out written; the parameters' bits changed; an
#: input it does not take (the caller runs PyTorch's operations).
EXACT_DONE, EXACT_STALE, EXACT_DECLINED = 0, 1, 2


class ExactLinearPlan(ctypes.Structure):
    """The C ``exact_linear_plan``: the float64 quantized weights ``[n_in, n_out]`` (contiguous) and bias
    ``[n_out]`` (or 0), the copies of the parameters' bits to compare with, their sizes in bytes, the
    layer's sizes and its input grid (``scale``, ``bound``)."""

    _fields_ = [("weight_t", ctypes.c_void_p), ("bias", ctypes.c_void_p), ("weight_copy", ctypes.c_void_p),
                ("bias_copy", ctypes.c_void_p), ("weight_bytes", ctypes.c_long), ("bias_bytes", ctypes.c_long),
                ("n_in", ctypes.c_long), ("n_out", ctypes.c_long), ("scale", ctypes.c_double),
                ("bound", ctypes.c_double)]


@functools.cache
def compiled() -> Compiled:
    """The loaded kernel library (compiled on first call), or ``None`` with the reason."""
    built = load("lif_export.fast", "lif_kernel.c")
    if built.library is not None:
        p, n, i = ctypes.c_void_p, ctypes.c_long, ctypes.c_int
        for suffix, real in _SUFFIXES.values():
            forward = getattr(built.library, f"lif_simulate_{suffix}")
            forward.argtypes = [p, p, p, p, p, n, n, p, p, p, i, i]
            forward.restype = None
            backward = getattr(built.library, f"lif_backward_{suffix}")
            backward.argtypes = [p, p, p, n, n, p, p, p, i, i, real, real, real, p, p]
            backward.restype = None
            parts = getattr(built.library, f"lif_backward_{suffix}_parts")
            parts.argtypes = [p, p, p, n, n, p, p, p, i, i, p]
            parts.restype = None
            exact = getattr(built.library, f"exact_linear_{suffix}")
            # (plan, weight, bias, x, batch, spikes, out) -> EXACT_*
            exact.argtypes = [p, p, p, p, n, i, p]
            exact.restype = i
    return built


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _parameters(beta: Tensor, threshold: Tensor, v_reset: Tensor, step_shape: torch.Size,
                per_neuron: bool) -> list[Tensor]:
    """The parameters as the kernels take them: one value each, or all expanded to the step shape."""
    return [(p.expand(step_shape) if per_neuron else p.reshape(1)).contiguous() for p in (beta, threshold, v_reset)]


def _usable(x: Tensor, step: Tensor | None, *whole: Tensor | None) -> bool:
    """CPU, float32/float64, contiguous; ``step`` of one step's shape, ``whole`` of ``x``'s."""
    return (x.device.type == "cpu" and x.dtype in _SUFFIXES and x.is_contiguous()
            and (step is None or (step.is_contiguous() and step.shape == x.shape[1:]))
            and all(t is None or (t.is_contiguous() and t.shape == x.shape) for t in whole))


def run_kernel(x: Tensor, v: Tensor, beta: Tensor, threshold: Tensor, v_reset: Tensor, reset: str, spikes: Tensor,
               u_trace: Tensor | None, v_trace: Tensor | None) -> bool:
    """Run ``x[T, *]`` from ``v`` (updated in place) into ``spikes`` (and the traces) if the kernel is
    available and can take these tensors; returns whether it ran. Parameters have ``x``'s dtype."""
    library = compiled().library
    if library is None or not _usable(x, v, spikes, u_trace, v_trace):
        return False
    per_neuron = any(p.numel() != 1 for p in (beta, threshold, v_reset))
    params = _parameters(beta, threshold, v_reset, x.shape[1:], per_neuron)
    getattr(library, f"lif_simulate_{_SUFFIXES[x.dtype][0]}")(
        x.data_ptr(), v.data_ptr(), spikes.data_ptr(), _ptr(u_trace), _ptr(v_trace), x.size(0), v.numel(),
        *(p.data_ptr() for p in params), int(per_neuron), RESETS[reset])
    return True


def run_backward(u_trace: Tensor, grad_spikes: Tensor | None, grad_v: Tensor | None, beta: Tensor,
                 threshold: Tensor, v_reset: Tensor, reset: str, surrogate: str, slope: float,
                 spike_part: Tensor | None) -> Tensor | None:
    """The backward kernel: ``grad_x[T, *]`` as :func:`~lif_export.fast.bptt.backward_through_time`
    computes it (and ``spike_part``, if given, filled as it fills it), or ``None`` when the kernel is
    unavailable or cannot take these tensors."""
    library = compiled().library
    if library is None or surrogate not in SURROGATES or not _usable(u_trace, grad_v, grad_spikes, spike_part):
        return None
    steps, step_shape = u_trace.size(0), u_trace.shape[1:]
    params = _parameters(beta, threshold, v_reset, step_shape, True)
    grad_x = torch.empty_like(u_trace)
    getattr(library, f"lif_backward_{_SUFFIXES[u_trace.dtype][0]}")(
        u_trace.data_ptr(), _ptr(grad_spikes), _ptr(grad_v), steps, math.prod(step_shape),
        *(p.data_ptr() for p in params), RESETS[reset], SURROGATES[surrogate], slope, math.pi / 2.0 * slope,
        slope / 2.0, grad_x.data_ptr(), _ptr(spike_part))
    return grad_x


def run_parts(u_trace: Tensor, grad_x: Tensor, grad_v: Tensor | None, beta: Tensor, threshold: Tensor,
              v_reset: Tensor, reset: str, kind: str, out: Tensor) -> bool:
    """Fill ``out[T, *]`` with a learned parameter's per-step terms as
    :func:`~lif_export.fast.bptt.parameter_terms_into` does (``kind``: ``"beta"`` or ``"reset"``) if the
    kernel is available and can take these tensors; returns whether it ran."""
    library = compiled().library
    if library is None or not _usable(u_trace, grad_v, grad_x, out):
        return False
    params = _parameters(beta, threshold, v_reset, u_trace.shape[1:], True)
    getattr(library, f"lif_backward_{_SUFFIXES[u_trace.dtype][0]}_parts")(
        u_trace.data_ptr(), grad_x.data_ptr(), _ptr(grad_v), u_trace.size(0), math.prod(u_trace.shape[1:]),
        *(p.data_ptr() for p in params), RESETS[reset], PART_KINDS[kind], out.data_ptr())
    return True
