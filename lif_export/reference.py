"""An independent NumPy implementation of SPEC.md, used as a test oracle.

It shares no code with :mod:`lif_export.functional`: NumPy's element-wise
``multiply`` and ``add`` each round once, which is exactly the arithmetic
SPEC.md prescribes. ``fused=True`` computes ``beta*v + x`` with a single
rounding instead (a fused multiply-add); the conformance tests use it to prove
that the near-threshold suite catches such a deviation.
"""

from fractions import Fraction

import numpy as np


def _fma(beta: np.ndarray, v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Round-once ``beta*v + x``, element by element, in the inputs' dtype."""
    out = np.empty(np.broadcast_shapes(beta.shape, v.shape, x.shape), dtype=x.dtype)
    b, vv, xx = np.broadcast_arrays(beta, v, x)
    for idx in np.ndindex(out.shape):
        terms = (float(b[idx]), float(vv[idx]), float(xx[idx]))
        if all(np.isfinite(terms)):
            exact = Fraction(terms[0]) * Fraction(terms[1]) + Fraction(terms[2])
            out[idx] = x.dtype.type(float(exact)) if x.dtype == np.float64 else x.dtype.type(
                np.float64(float(exact))
            )
        else:
            out[idx] = x.dtype.type(terms[0] * terms[1] + terms[2])
    return out


def reference_step(
    x: np.ndarray,
    v: np.ndarray,
    beta: float | np.ndarray,
    threshold: float | np.ndarray,
    v_reset: float | np.ndarray = 0.0,
    reset: str = "zero",
    fused: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """One SPEC.md step in NumPy; parameters are rounded to ``x.dtype`` first."""
    dtype = x.dtype
    beta = np.asarray(beta, dtype=dtype)
    threshold = np.asarray(threshold, dtype=dtype)
    v_reset = np.asarray(v_reset, dtype=dtype)
    with np.errstate(all="ignore"):
        u = _fma(beta, v, x) if fused else np.add(np.multiply(beta, v), x)
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
    fused: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(spikes[T, *], v_T[*], v_trace[T, *])`` over the leading axis of ``x``."""
    v = np.broadcast_to(np.asarray(v0, dtype=x.dtype), x.shape[1:]).copy()
    spikes = np.empty_like(x)
    trace = np.empty_like(x)
    for t in range(x.shape[0]):
        spikes[t], v = reference_step(x[t], v, beta, threshold, v_reset, reset, fused)
        trace[t] = v
    return spikes, v, trace
