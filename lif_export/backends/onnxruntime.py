"""ONNX Runtime: the step graph once per time step, the sequence graph whole and in chunks.

Variations that must not change a bit: graph optimisation level (disabled,
basic, extended, all) and intra-op thread count (1, 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..ort_session import OPT_LEVELS, make_session
from .base import Backend, Context, RunResult, chunk_bounds, register, stack_steps


class OrtStep(Backend):
    def __init__(self, path: Path, opt: str, threads: int):
        self.session = make_session(path, opt, threads)
        self.name = f"onnxruntime/step/opt={opt}/threads={threads}"

    def run(self, x: np.ndarray, v0: np.ndarray) -> RunResult:
        spikes, trace, v = [], [], v0
        for t in range(x.shape[0]):
            s, v = self.session.run(["spike", "v_next"], {"x": x[t], "v": v})
            spikes.append(s)
            trace.append(v)
        return stack_steps(spikes, trace, x, v)


class OrtSequence(Backend):
    def __init__(self, path: Path, opt: str, threads: int, chunked: bool):
        self.session = make_session(path, opt, threads)
        self.chunked = chunked
        self.name = f"onnxruntime/sequence{'-chunked' if chunked else ''}/opt={opt}/threads={threads}"

    def run(self, x: np.ndarray, v0: np.ndarray) -> RunResult:
        bounds = chunk_bounds(x.shape[0]) if self.chunked else [(0, x.shape[0])]
        spikes, trace, v = [], [], v0
        for start, end in bounds or [(0, 0)]:
            s, v, tr = self.session.run(["spike", "v_next", "v_trace"], {"x": x[start:end], "v": v})
            spikes.append(s)
            trace.append(tr)
        return RunResult(np.concatenate(spikes), v, np.concatenate(trace))


@register("onnxruntime")
def variants(ctx: Context) -> Iterator[Backend]:
    if ctx.is_network:
        return
    settings = [(o, t) for o in OPT_LEVELS for t in (1, 2)] if ctx.full else [("disabled", 1), ("all", 2)]
    if ctx.usable("onnx_step"):
        for opt, threads in settings:
            yield OrtStep(ctx.artifact("onnx_step"), opt, threads)
    if ctx.usable("onnx_sequence"):
        path = ctx.artifact("onnx_sequence")
        for opt, threads in settings:
            yield OrtSequence(path, opt, threads, chunked=False)
        yield OrtSequence(path, "all", 1, chunked=True)
