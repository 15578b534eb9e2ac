"""Network artifacts (``lif_export.network.export``) loaded fresh from disk, as backends.

TorchScript modules are called ``(x, [states]) -> (out, [states] [, [traces]])``; ONNX graphs
take and return every state as its own named tensor. Step artifacts run once per time step,
sequence artifacts whole or on uneven chunks with the states carried.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..export.manifest import find_artifact
from ..ort_session import OPT_LEVELS, make_session
from .base import Context, NetworkBackend, TensorRun, chunk_bounds, register
from .torchscript import TRANSFORMS, _load


def _state_names(entry: dict) -> list[str]:
    return [s["input"] for s in entry["state"]]


def _assemble(entry: dict, outs: list[np.ndarray], finals: list[np.ndarray], traces: list[list[np.ndarray]],
              x: np.ndarray) -> TensorRun:
    names = _state_names(entry)
    named = {"out": np.concatenate(outs) if outs else np.empty((0,), x.dtype)}
    named.update({f"{n}_trace": np.concatenate(t) for n, t in zip(names, traces, strict=True)})
    named.update({f"{n}_next": f for n, f in zip(names, finals, strict=True)})
    return TensorRun(named)


class TorchScriptNetwork(NetworkBackend):
    def __init__(self, ctx: Context, artifact: str, variation: str = "plain", chunked: bool = False):
        self.entry = find_artifact(ctx.manifest, artifact)
        self.method = self.entry["method"]
        module = _load(ctx.models_dir / self.entry["file"], variation, [self.method])
        self.fn = getattr(module, self.method)
        self.sequence = self.entry["kind"] == "sequence"
        self.chunked = chunked
        label = artifact.removeprefix("torchscript_") + ("-chunked" if chunked else "")
        self.name = f"torchscript/{label}/{variation}"

    def run(self, x: np.ndarray, states: dict[str, np.ndarray]) -> TensorRun:
        names = _state_names(self.entry)
        state = [torch.from_numpy(states[n]) for n in names]
        outs, traces = [], [[] for _ in names]
        with torch.no_grad():
            if self.sequence:
                for start, end in chunk_bounds(x.shape[0]) if self.chunked else [(0, x.shape[0])]:
                    out, state, trace = self.fn(torch.from_numpy(x[start:end]), state)
                    outs.append(out.numpy())
                    for k, tr in enumerate(trace):
                        traces[k].append(tr.numpy())
            else:
                for t in range(x.shape[0]):
                    out, state = self.fn(torch.from_numpy(x[t]), state)
                    outs.append(out.numpy()[None])
                    for k, s in enumerate(state):
                        traces[k].append(s.numpy()[None])
        return _assemble(self.entry, outs, [s.numpy() for s in state], traces, x)


class OrtNetwork(NetworkBackend):
    def __init__(self, ctx: Context, artifact: str, opt: str, threads: int, chunked: bool = False):
        self.entry = find_artifact(ctx.manifest, artifact)
        self.session = make_session(ctx.models_dir / self.entry["file"], opt, threads)
        self.sequence = self.entry["kind"] == "sequence"
        self.chunked = chunked
        label = artifact.removeprefix("onnx_") + ("-chunked" if chunked else "")
        self.name = f"onnxruntime/{label}/opt={opt}/threads={threads}"

    def run(self, x: np.ndarray, states: dict[str, np.ndarray]) -> TensorRun:
        names = _state_names(self.entry)
        outputs = [t["name"] for t in self.entry["outputs"]]
        state = dict(states)
        outs, traces = [], [[] for _ in names]
        bounds = chunk_bounds(x.shape[0]) if self.chunked else [(0, x.shape[0])]
        for start, end in bounds if self.sequence else [(t, t + 1) for t in range(x.shape[0])]:
            feed = {"x": x[start:end] if self.sequence else x[start], **state}
            result = dict(zip(outputs, self.session.run(outputs, feed), strict=True))
            outs.append(result["out"] if self.sequence else result["out"][None])
            for k, n in enumerate(names):
                state[n] = result[f"{n}_next"]
                traces[k].append(result[f"{n}_trace"] if self.sequence else state[n][None])
        return _assemble(self.entry, outs, [state[n] for n in names], traces, x)


@register("network")
def variants(ctx: Context) -> Iterator[NetworkBackend]:
    if not ctx.is_network:
        return
    variations = list(TRANSFORMS) if ctx.full else ["plain"]
    if ctx.usable("torchscript_step"):
        for variation in variations:
            yield TorchScriptNetwork(ctx, "torchscript_step", variation)
    if ctx.usable("torchscript_sequence"):
        yield TorchScriptNetwork(ctx, "torchscript_sequence", "plain", chunked=True)
    if ctx.usable("torchscript_network"):
        yield TorchScriptNetwork(ctx, "torchscript_network")
    settings = [(o, t) for o in OPT_LEVELS for t in (1, 2)] if ctx.full else [("disabled", 1), ("all", 2)]
    for opt, threads in settings:
        if ctx.usable("onnx_step"):
            yield OrtNetwork(ctx, "onnx_step", opt, threads)
        if ctx.usable("onnx_sequence"):
            yield OrtNetwork(ctx, "onnx_sequence", opt, threads)
    if ctx.usable("onnx_sequence"):
        yield OrtNetwork(ctx, "onnx_sequence", "all", 1, chunked=True)
