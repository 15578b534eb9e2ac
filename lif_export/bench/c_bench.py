"""Speed of the generated C library (the ``c`` format) on the host, with its targets:

* **C step [1, 128]**: ``lif_step`` of the default neuron with 128 features, timed inside C over
  1000 steps of random currents (a ctypes call costs more than the step): at most 0.2 us per step.
* **C run [T, 1, 1024]**: ``lif_run`` over T steps of 1024 neurons against the hand-written fused loop
  (``native_lif.c``), both built with ``-O3 -march=native`` (the loop also with ``-ffp-contract=off``,
  which the library does not need): at most 1.5 times its time. Spikes and potentials of the two
  are checked bit for bit.

``python -m lif_export.bench.c_bench`` prints the rows; :func:`c_rows` returns them (for ``lif-export bench``).
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from importlib import resources

import numpy as np

from ..export import NeuronSpec
from ..export.formats.c import library
from ..export.formats.c_harness import BuildError, cached_build
from ..export.model import NeuronModel
from ..fast.ccompile import compiler

#: The targets of the issue that asked for the C format.
STEP_LIMIT_NS = 200.0
RUN_LIMIT_RATIO = 1.5
FLAGS = ("-O3", "-march=native")

_TIMER = """#include <time.h>
#include "lif.h"

/* ns per step of lif_step over x[steps][LIF_X_SIZE], repeated rounds times. */
double lif_export_time_step(const float *x, size_t steps, size_t rounds, float *out) {
    lif_state state;
    struct timespec start, end;
    size_t r, t;
    lif_reset(&state);
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (r = 0; r < rounds; ++r)
        for (t = 0; t < steps; ++t) lif_step(&state, x + t * LIF_X_SIZE, out);
    clock_gettime(CLOCK_MONOTONIC, &end);
    return ((double)(end.tv_sec - start.tv_sec) * 1e9 + (double)(end.tv_nsec - start.tv_nsec))
           / (double)(rounds * steps);
}

void lif_export_run(float *v, const float *x, float *out, size_t steps) {
    lif_state state;
    size_t i;
    for (i = 0; i < LIF_X_SIZE; ++i) state.v[i] = v[i];
    lif_run(&state, x, out, steps);
    for (i = 0; i < LIF_X_SIZE; ++i) v[i] = state.v[i];
}
"""


def _library(cc: str, features: int) -> ctypes.CDLL:
    """The default neuron with ``features`` features as C, with the timer, built with :data:`FLAGS`."""
    generated = library(NeuronModel(NeuronSpec(feature_shape=(features,))), "lif")
    files = {"lif.c": generated.source.encode(), "lif.h": generated.header.encode(), "timer.c": _TIMER.encode()}
    loaded = ctypes.CDLL(str(cached_build([cc, *FLAGS, "-shared", "-fPIC"], files, ["lif.c", "timer.c"], "lif.so")))
    loaded.lif_export_time_step.restype = ctypes.c_double
    return loaded


def _native(cc: str) -> ctypes.CDLL:
    source = resources.files("lif_export.bench").joinpath("native_lif.c").read_bytes()
    path = cached_build([cc, *FLAGS, "-ffp-contract=off", "-shared", "-fPIC"], {"native_lif.c": source},
                        ["native_lif.c"], "native_lif.so")
    return ctypes.CDLL(str(path))


def _pointer(array: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(array.ctypes.data)


def _best(functions: list[Callable[[], None]], rounds: int) -> list[float]:
    """The fastest of ``rounds`` calls of each function, in seconds (interleaved, so that a busy
    machine slows them alike)."""
    best = [float("inf")] * len(functions)
    for _ in range(rounds):
        for k, fn in enumerate(functions):
            start = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def c_rows(steps: int = 1000, rounds: int = 7, step_features: int = 128, run_features: int = 1024) -> list[dict]:
    """One row per measurement (see the module docstring); one row saying why when nothing can be built."""
    cc = compiler()
    if cc is None:
        return [{"workload": "C", "result": "skipped: no C compiler (set CC)"}]
    try:
        step_lib, run_lib, native = _library(cc, step_features), _library(cc, run_features), _native(cc)
    except BuildError as err:
        return [{"workload": "C", "result": f"skipped: {err}"}]
    rng = np.random.default_rng(0)
    x = rng.normal(0.35, 1.0, (steps, step_features)).astype(np.float32)
    out = np.empty(step_features, np.float32)
    step_ns = min(time_step(step_lib, x, out, 20) for _ in range(rounds))
    rows = [{"workload": f"C step [1, {step_features}]", "ns_per_step": round(step_ns, 1), "limit_ns": STEP_LIMIT_NS,
             "result": "ok" if step_ns <= STEP_LIMIT_NS else "SLOW"}]

    x = rng.normal(0.35, 1.0, (steps, run_features)).astype(np.float32)
    v_c, v_native = np.zeros(run_features, np.float32), np.zeros(run_features, np.float32)
    out_c, out_native = np.empty_like(x), np.empty_like(x)

    def run_c() -> None:
        run_lib.lif_export_run(_pointer(v_c), _pointer(x), _pointer(out_c), ctypes.c_size_t(steps))

    def run_native() -> None:
        native.lif_zero_f32(_pointer(x), _pointer(out_native), _pointer(v_native), ctypes.c_long(steps),
                            ctypes.c_long(run_features), ctypes.c_float(0.9), ctypes.c_float(1.0), ctypes.c_float(0.0))

    run_c()
    run_native()
    same = (np.array_equal(out_c.view(np.uint32), out_native.view(np.uint32))
            and np.array_equal(v_c.view(np.uint32), v_native.view(np.uint32)))
    c_time, native_time = _best([run_c, run_native], rounds)
    ratio = c_time / native_time
    rows.append({"workload": f"C run [{steps}, 1, {run_features}]", "ns_per_step": round(c_time / steps * 1e9, 1),
                 "native_ns_per_step": round(native_time / steps * 1e9, 1), "ratio": round(ratio, 2),
                 "limit_ratio": RUN_LIMIT_RATIO,
                 "result": ("ok" if ratio <= RUN_LIMIT_RATIO else "SLOW") if same else "MISMATCH"})
    return rows


def time_step(lib: ctypes.CDLL, x: np.ndarray, out: np.ndarray, repeats: int) -> float:
    """ns per ``lif_step`` over every step of ``x``, ``repeats`` times in a row (timed inside C)."""
    return lib.lif_export_time_step(_pointer(x), ctypes.c_size_t(x.shape[0]), ctypes.c_size_t(repeats), _pointer(out))


def main() -> None:
    for row in c_rows():
        print("  ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()

