"""The C library (the ``c`` format) compiled with the host's C compiler and run through ctypes.

The library and a small driver are built into a shared object, cached by the sha256 of the sources
and the flags (:func:`~lif_export.export.formats.c_harness.cached_build`). One ``<name>_state`` holds
one sample, so each sample of a batch runs on its own state: the driver copies the state in, calls
``<name>_step`` for every step, records the state after each step (the traces) and copies it back.
Variations that must not change a bit: the optimisation level, ``-march=native`` (fused
multiply-add instructions available), the explicit NaN handling of non-x86 targets
(``LIF_EXPORT_PORTABLE_NAN``), and ``<name>_run`` on uneven chunks (its outputs and final states;
the traces are the step run's). Without a C compiler on PATH the family yields nothing and says
so once.
"""

from __future__ import annotations

import ctypes
import functools
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..export.formats.c import CTYPES
from ..export.formats.c_harness import HarnessLibrary, cached_build
from ..fast.ccompile import compiler
from .base import Backend, Context, Tensors, chunk_bounds, register

#: label -> flags: every verify runs these ...
FLAGS = {"-O2": ("-O2",), "-O3 -march=native": ("-O3", "-march=native"),
         "-O2 portable NaN": ("-O2", "-DLIF_EXPORT_PORTABLE_NAN")}
#: ... and ``verify --full`` these too.
FULL_FLAGS = {"-O0": ("-O0",), "-O3": ("-O3",)}


def driver(lib: HarnessLibrary) -> str:
    """C functions on a flat state (every state of the struct, in order): trace, run."""
    n, t = lib.name, CTYPES[lib.dtype].name
    return f"""#include <string.h>
#include "{n}.h"

size_t lif_export_state_size(void) {{ return sizeof({n}_state); }}

void lif_export_trace({t} *state, const {t} *x, {t} *out, {t} *trace, size_t steps) {{
    {n}_state s;
    size_t t;
    memcpy(&s, state, sizeof s);
    for (t = 0; t < steps; ++t) {{
        {n}_step(&s, x + t * {n.upper()}_X_SIZE, out + t * {n.upper()}_OUT_SIZE);
        memcpy(trace + t * {lib.state_size}, &s, {lib.state_size} * sizeof({t}));
    }}
    memcpy(state, &s, sizeof s);
}}

void lif_export_run({t} *state, const {t} *x, {t} *out, size_t steps) {{
    {n}_state s;
    memcpy(&s, state, sizeof s);
    {n}_run(&s, x, out, steps);
    memcpy(state, &s, sizeof s);
}}
"""


def build(folder: Path, cc: str, flags: tuple[str, ...]) -> tuple[HarnessLibrary, ctypes.CDLL]:
    """The library of ``folder`` with the driver, as a loaded shared object (built once per sources,
    compiler and flags: see ``cached_build``)."""
    lib = HarnessLibrary.read(folder, cases=())
    files = {**lib.files, "driver.c": driver(lib).encode()}
    path = cached_build([cc, *flags, "-shared", "-fPIC"], files, [f"{lib.name}.c", "driver.c"], f"{lib.name}.so")
    loaded = ctypes.CDLL(str(path))
    struct_size = loaded.lif_export_state_size
    struct_size.restype = ctypes.c_size_t
    if struct_size() != max(lib.state_size, 1) * np.dtype(lib.dtype).itemsize:
        raise RuntimeError(f"{lib.name}_state is {struct_size()} bytes, not its {lib.state_size} states")
    return lib, loaded


class CLibrary(Backend):
    """Every sample of ``x[T, batch, ...]`` through the compiled library."""

    def __init__(self, ctx: Context, cc: str, label: str, flags: tuple[str, ...], chunked: bool = False) -> None:
        self.folder, self.cc, self.flags, self.chunked = ctx.models_dir, cc, flags, chunked
        self.name = f"c/{'run-chunked' if chunked else 'step'}/{Path(cc).name} {label}"
        self.built: tuple[HarnessLibrary, ctypes.CDLL] | None = None  # on the first run: a build error is a row

    def run(self, x: np.ndarray, states: Tensors) -> Tensors:
        if self.built is None:
            self.built = build(self.folder, self.cc, self.flags)
        lib, loaded = self.built
        steps, batch = x.shape[:2]
        out = np.empty((steps, batch, lib.out_size), x.dtype)
        trace = np.empty((steps, batch, lib.state_size), x.dtype)
        final = np.empty((batch, lib.state_size), x.dtype)
        for b in range(batch):
            state = np.zeros(max(lib.state_size, 1), x.dtype)  # a struct without states has one unused value
            for (name, _, size), offset in zip(lib.fields, lib.offsets, strict=True):
                state[offset:offset + size] = states[name][b].reshape(size)
            sample = np.ascontiguousarray(x[:, b].reshape(steps, lib.x_size))
            out_b, trace_b = np.empty((steps, lib.out_size), x.dtype), np.empty((steps, lib.state_size), x.dtype)
            start = state.copy()
            loaded.lif_export_trace(*_pointers(state, sample, out_b, trace_b), ctypes.c_size_t(steps))
            if self.chunked:  # the run's outputs and final state; the traces stay the step run's
                state = start
                for begin, end in chunk_bounds(steps):
                    chunk = np.empty((end - begin, lib.out_size), x.dtype)
                    loaded.lif_export_run(*_pointers(state, np.ascontiguousarray(sample[begin:end]), chunk),
                                          ctypes.c_size_t(end - begin))
                    out_b[begin:end] = chunk
            out[:, b], trace[:, b], final[b] = out_b, trace_b, state[:lib.state_size]
        return named_results(lib, out, trace, final)


def named_results(lib: HarnessLibrary, out: np.ndarray, trace: np.ndarray, final: np.ndarray) -> Tensors:
    """``out[T, batch, O]``, ``trace[T, batch, S]``, ``final[batch, S]`` as the manifest's tensors."""
    entry = lib.entry
    shapes = {t["name"]: t["shape"][1:] for t in entry["inputs"] + entry["outputs"]}
    steps, batch = out.shape[:2]
    output = entry["outputs"][0]["name"]
    named = {output: out.reshape(steps, batch, *shapes[output])}
    for s, (name, _, size), offset in zip(entry["state"], lib.fields, lib.offsets, strict=True):
        named[s["trace"]] = trace[:, :, offset:offset + size].reshape(steps, batch, *shapes[name])
        named[s["output"]] = final[:, offset:offset + size].reshape(batch, *shapes[name])
    return named


def _pointers(*arrays: np.ndarray) -> list[ctypes.c_void_p]:
    return [ctypes.c_void_p(a.ctypes.data) for a in arrays]


@functools.cache
def _say_no_compiler() -> None:
    warnings.warn("the c backend family is skipped: no C compiler on PATH (install one, or set CC)", stacklevel=3)


@register("c")
def variants(ctx: Context) -> Iterator[Backend]:
    if not ctx.usable("c_library"):
        return
    cc = compiler()
    if cc is None:
        _say_no_compiler()
        return
    flag_sets = {**FLAGS, **(FULL_FLAGS if ctx.full else {})}
    for label, flags in flag_sets.items():
        yield CLibrary(ctx, cc, label, flags)
    yield CLibrary(ctx, cc, "-O2", FLAGS["-O2"], chunked=True)

