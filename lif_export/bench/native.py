"""The native reference loop (native_lif.c), compiled here on first use and cached.

Compiled like every C source of the package (:mod:`lif_export.fast.ccompile`): ``-O3
-march=native -ffp-contract=off``, so the reference is as fast as this CPU allows while
``beta * v + x`` stays a multiply and an add (its bits are checked against the other paths).
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from ..fast.ccompile import Compiled, load


@functools.cache
def load_native() -> Compiled:
    """The reference library, or ``None`` with the reason; ``description`` names the compiler and flags."""
    built = load("lif_export.bench", "native_lif.c")
    if built.library is not None:
        f = ctypes.POINTER(ctypes.c_float)
        built.library.lif_zero_f32.argtypes = [f, f, f, ctypes.c_long, ctypes.c_long, ctypes.c_float,
                                               ctypes.c_float, ctypes.c_float]
        built.library.lif_zero_f32.restype = None
    return built


def run_native(lib: ctypes.CDLL, x: np.ndarray, spikes: np.ndarray, v: np.ndarray,
               beta: float, threshold: float, v_reset: float) -> None:
    """``x[T, ...]`` float32 C-contiguous; ``spikes`` like ``x``; ``v`` the state, updated in place."""
    f = ctypes.POINTER(ctypes.c_float)
    lib.lif_zero_f32(x.ctypes.data_as(f), spikes.ctypes.data_as(f), v.ctypes.data_as(f), x.shape[0],
                     int(np.prod(x.shape[1:])), beta, threshold, v_reset)
