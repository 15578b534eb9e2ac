"""An independent NumPy implementation of docs/semantics.md, used as a test oracle.

It shares no code with :mod:`lif_export.functional`: NumPy's element-wise
``multiply`` and ``add`` each round once, which is exactly the arithmetic
docs/semantics.md prescribes. Two deliberately wrong variants exist so the conformance
tests can prove the checker catches them: ``arithmetic="fused"`` computes
``beta*v + x`` with a single rounding (a fused multiply-add), and
``arithmetic="reordered"`` computes the algebraically equal
``v - (1 - beta)*v + x``.
"""

from fractions import Fraction

import numpy as np


def _fma(beta: np.ndarray, v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Round-once ``beta*v + x``, element by element, in the inputs' dtype."""
    if x.dtype == np.float32:
        # float32 products are exact in float64; one float64 rounding of the sum,
        # then to float32, matches a float32 FMA except on rare double-rounding ties.
        wide = beta.astype(np.float64) * v.astype(np.float64) + x.astype(np.float64)
        return wide.astype(np.float32)
    out = np.empty(np.broadcast_shapes(beta.shape, v.shape, x.shape), dtype=x.dtype)
    b, vv, xx = np.broadcast_arrays(beta, v, x)
    for idx in np.ndindex(out.shape):
        terms = (float(b[idx]), float(vv[idx]), float(xx[idx]))
        if not all(np.isfinite(terms)):
            out[idx] = terms[0] * terms[1] + terms[2]
            continue
        exact = Fraction(terms[0]) * Fraction(terms[1]) + Fraction(terms[2])
        try:
            out[idx] = float(exact)
        except OverflowError:
            out[idx] = np.inf if exact > 0 else -np.inf
    return out


def reference_step(
    x: np.ndarray,
    v: np.ndarray,
    beta: float | np.ndarray,
    threshold: float | np.ndarray,
    v_reset: float | np.ndarray = 0.0,
    reset: str = "zero",
    arithmetic: str = "spec",
) -> tuple[np.ndarray, np.ndarray]:
    """One step of docs/semantics.md in NumPy; parameters are rounded to ``x.dtype`` first."""
    dtype = x.dtype
    beta = np.asarray(beta, dtype=dtype)
    threshold = np.asarray(threshold, dtype=dtype)
    v_reset = np.asarray(v_reset, dtype=dtype)
    with np.errstate(all="ignore"):
        if arithmetic == "spec":
            # x first: when both terms are NaN, IEEE 754 leaves the result's payload
            # open; x86 returns the first operand's, and PyTorch's and onnxruntime's
            # kernels keep x's. The value (a NaN) is the same either way.
            u = np.add(x, np.multiply(beta, v))
        elif arithmetic == "fused":
            u = _fma(beta, v, x)
        elif arithmetic == "reordered":
            u = v - (np.asarray(1, dtype=dtype) - beta) * v + x
        else:
            raise ValueError(f"arithmetic must be 'spec', 'fused' or 'reordered', got {arithmetic!r}")
        fired = u > threshold
        spike = fired.astype(dtype)
        if reset == "zero":
            v_next = np.where(fired, v_reset, u).astype(dtype)
        elif reset == "subtract":
            v_next = u - spike * threshold
        elif reset == "none":
            v_next = u
        else:
            raise ValueError(f"reset must be one of ['zero', 'subtract', 'none'], got {reset!r}")
    return spike, np.broadcast_to(v_next, x.shape).copy()


def reference_sequence(
    x: np.ndarray,
    v0: np.ndarray,
    beta: float | np.ndarray,
    threshold: float | np.ndarray,
    v_reset: float | np.ndarray = 0.0,
    reset: str = "zero",
    arithmetic: str = "spec",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(spikes[T, *], v_T[*], v_trace[T, *])`` over the leading axis of ``x``."""
    v = np.broadcast_to(np.asarray(v0, dtype=x.dtype), x.shape[1:]).copy()
    spikes = np.empty_like(x)
    trace = np.empty_like(x)
    for t in range(x.shape[0]):
        spikes[t], v = reference_step(x[t], v, beta, threshold, v_reset, reset, arithmetic)
        trace[t] = v
    return spikes, v, trace
