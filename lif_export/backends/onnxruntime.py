"""ONNX Runtime: a step graph once per time step, a sequence graph whole and in chunks (through
:class:`~lif_export.backends.ort_stream.OnnxSequenceStream`), for
neurons and networks alike (every state is its own named input and output).

Variations that must not change a bit: graph optimisation level (disabled, basic, extended, all)
and intra-op thread count (1, 2).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .base import Backend, Context, StepCollector, Tensors, chunk_bounds, register
from .ort_session import OPT_LEVELS, make_session
from .ort_stream import OnnxSequenceStream


class OrtArtifact(Backend):
    def __init__(self, ctx: Context, artifact: str, opt: str, threads: int, chunked: bool = False):
        self.ctx, self.artifact = ctx, artifact
        self.entry = ctx.entry(artifact)
        self.session = make_session(ctx.models_dir / self.entry["file"], opt, threads)
        self.sequence = self.entry["kind"] == "sequence"
        self.chunked = chunked
        self.outputs = [t["name"] for t in self.entry["outputs"]]
        label = artifact.removeprefix("onnx_") + ("-chunked" if chunked else "")
        self.name = f"onnxruntime/{label}/opt={opt}/threads={threads}"

    def run(self, x: np.ndarray, states: Tensors) -> Tensors:
        if self.chunked:
            return self._run_chunked(x, states)
        collect = StepCollector(self.entry, x, states)
        state = {s["input"]: states[s["input"]] for s in self.entry["state"]}
        bounds = [(0, x.shape[0])] if self.sequence else [(t, t + 1) for t in range(x.shape[0])]
        for start, end in bounds:
            feed = {"x": x[start:end] if self.sequence else x[start], **state}
            result = dict(zip(self.outputs, self.session.run(self.outputs, feed), strict=True))
            for s in self.entry["state"]:
                state[s["input"]] = result[s["output"]]
            if self.sequence:
                collect.add(result[self.outputs[0]], [result[s["trace"]] for s in self.entry["state"]])
            else:
                collect.add(result[self.outputs[0]][None], [state[s["input"]][None] for s in self.entry["state"]])
        return collect.result([state[s["input"]] for s in self.entry["state"]])

    def _run_chunked(self, x: np.ndarray, states: Tensors) -> Tensors:
        """The sequence in uneven chunks through :class:`OnnxSequenceStream`, as a streaming user runs it:
        each chunk's output and traces written into slices of whole-sequence arrays."""
        stream = OnnxSequenceStream(self.ctx.models_dir, x.shape[1:], self.artifact, manifest=self.ctx.manifest,
                                    session=self.session)
        stream.reset(**{s["input"]: states[s["input"]] for s in self.entry["state"]})
        out = np.empty((x.shape[0], *stream.out_shape), x.dtype)
        traces = {s["trace"]: np.empty((x.shape[0], *states[s["input"]].shape), x.dtype) for s in self.entry["state"]}
        for start, end in chunk_bounds(x.shape[0]):
            stream.run(x[start:end], out=out[start:end], traces={k: t[start:end] for k, t in traces.items()})
        finals = {s["output"]: stream.state(s["input"]) for s in self.entry["state"]}
        return {self.outputs[0]: out, **traces, **finals}


@register("onnxruntime")
def variants(ctx: Context) -> Iterator[Backend]:
    settings = [(o, t) for o in OPT_LEVELS for t in (1, 2)] if ctx.full else [("disabled", 1), ("all", 2)]
    for artifact in ("onnx_step", "onnx_sequence"):
        if ctx.usable(artifact):
            for opt, threads in settings:
                yield OrtArtifact(ctx, artifact, opt, threads)
    if ctx.usable("onnx_sequence"):
        yield OrtArtifact(ctx, "onnx_sequence", "all", 1, chunked=True)
