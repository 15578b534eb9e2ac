"""TorchScript artifacts loaded fresh from disk: step, sequence (whole and chunked), stateful neuron.

Variations that must not change a bit: the module as loaded, frozen with
``torch.jit.freeze``, and passed through ``torch.jit.optimize_for_inference``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..export import torchscript as ts_export
from .base import Backend, Context, RunResult, chunk_bounds, register, torch_step_loop
from .eager import run_stateful

#: variation name -> transform of a loaded module, given the methods to keep.
TRANSFORMS: dict[str, Callable[[torch.jit.ScriptModule, list[str]], torch.jit.ScriptModule]] = {
    "plain": lambda m, keep: m,
    "frozen": lambda m, keep: torch.jit.freeze(m.eval(), preserved_attrs=keep),
    "optimized": lambda m, keep: torch.jit.optimize_for_inference(
        torch.jit.freeze(m.eval(), preserved_attrs=keep), other_methods=keep
    ),
}


def _load(path: Path, variation: str, keep: list[str]) -> torch.jit.ScriptModule:
    module, _ = ts_export.load(path)
    return TRANSFORMS[variation](module, keep)


class TorchScriptStep(Backend):
    """Any artifact with an explicit-state step method, called once per time step."""

    def __init__(self, path: Path, method: str, variation: str, label: str):
        keep = [] if method == "forward" else [method]
        self.fn = getattr(_load(path, variation, keep), method)
        self.name = f"torchscript/{label}/{variation}"

    def run(self, x: np.ndarray, v0: np.ndarray) -> RunResult:
        return torch_step_loop(self.fn, x, v0)


class TorchScriptSequence(Backend):
    """``forward_trace`` on the whole sequence, or on uneven chunks with the state carried."""

    def __init__(self, path: Path, variation: str, chunked: bool):
        self.fn = _load(path, variation, ["forward_trace"]).forward_trace
        self.chunked = chunked
        self.name = f"torchscript/sequence{'-chunked' if chunked else ''}/{variation}"

    def run(self, x: np.ndarray, v0: np.ndarray) -> RunResult:
        bounds = chunk_bounds(x.shape[0]) if self.chunked else [(0, x.shape[0])]
        spikes, trace, v = [], [], torch.from_numpy(v0)
        with torch.no_grad():
            for start, end in bounds or [(0, 0)]:
                s, v, tr = self.fn(torch.from_numpy(x[start:end]), v)
                spikes.append(s.numpy())
                trace.append(tr.numpy())
        return RunResult(np.concatenate(spikes), v.numpy(), np.concatenate(trace))


class TorchScriptNeuron(Backend):
    """The scripted seed ``LIFNeuron``'s stateful ``forward``."""

    def __init__(self, path: Path):
        self.module, _ = ts_export.load(path)
        self.name = "torchscript/neuron-forward/plain"

    def run(self, x: np.ndarray, v0: np.ndarray) -> RunResult:
        return run_stateful(self.module, x, v0)


@register("torchscript")
def variants(ctx: Context) -> Iterator[Backend]:
    if ctx.is_network:
        return
    variations = list(TRANSFORMS) if ctx.full else ["plain", "frozen"]
    if ctx.usable("torchscript_step"):
        for variation in variations:
            yield TorchScriptStep(ctx.artifact("torchscript_step"), "forward", variation, "step")
    if ctx.usable("torchscript_sequence"):
        path = ctx.artifact("torchscript_sequence")
        for variation in variations:
            yield TorchScriptSequence(path, variation, chunked=False)
        yield TorchScriptSequence(path, "plain", chunked=True)
    if ctx.usable("torchscript_neuron"):
        path = ctx.artifact("torchscript_neuron")
        yield TorchScriptStep(path, "step", "plain", "neuron-step")
        yield TorchScriptNeuron(path)
