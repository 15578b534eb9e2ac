"""TorchScript artifacts loaded fresh from disk, neurons and networks alike.

Step artifacts run once per time step; sequence artifacts whole, or on uneven chunks with the
state carried. The manifest's calling convention says how: ``flat`` (one argument per state, a
neuron's ``(x, v) -> (spike, v_next)``) or ``state_list`` (a network's ``(x, [states]) -> (out,
[states] [, [traces]])``). Variations that must not change a bit: the module as loaded, frozen
with ``torch.jit.freeze``, and passed through ``torch.jit.optimize_for_inference``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..export.formats import torchscript as ts_format
from .base import Backend, Context, StepCollector, Tensors, chunk_bounds, register
from .eager import run_stateful

#: variation name -> transform of a loaded module, given the methods to keep.
TRANSFORMS: dict[str, Callable[[torch.jit.ScriptModule, list[str]], torch.jit.ScriptModule]] = {
    "plain": lambda m, keep: m,
    "frozen": lambda m, keep: torch.jit.freeze(m.eval(), preserved_attrs=keep),
    "optimized": lambda m, keep: torch.jit.optimize_for_inference(
        torch.jit.freeze(m.eval(), preserved_attrs=keep), other_methods=keep
    ),
}


def load(path: Path, variation: str, keep: list[str]) -> torch.jit.ScriptModule:
    module, _ = ts_format.load(path)
    return TRANSFORMS[variation](module, keep)


class TorchScriptArtifact(Backend):
    """Any step or sequence artifact, called by its manifest method and calling convention."""

    def __init__(self, ctx: Context, artifact: str, variation: str = "plain", chunked: bool = False):
        self.entry = ctx.entry(artifact)
        method = self.entry["method"]
        module = load(ctx.models_dir / self.entry["file"], variation, [] if method == "forward" else [method])
        self.fn = getattr(module, method)
        self.flat = self.entry.get("calling_convention", "flat") == "flat"
        self.sequence = self.entry["kind"] == "sequence"
        self.chunked = chunked
        label = artifact.removeprefix("torchscript_") + ("-chunked" if chunked else "")
        self.name = f"torchscript/{label}/{variation}"

    def _call(self, x: torch.Tensor, state: list[torch.Tensor]) -> tuple:
        """``(out, states[, traces])`` whatever the calling convention."""
        if not self.flat:
            return self.fn(x, state)
        result = self.fn(x, *state)
        n = len(state)
        return (result[0], list(result[1:1 + n]), *([list(result[1 + n:])] if self.sequence else []))

    def run(self, x: np.ndarray, states: Tensors) -> Tensors:
        collect = StepCollector(self.entry, x, states)
        state = [torch.from_numpy(states[s["input"]]) for s in self.entry["state"]]
        with torch.no_grad():
            if self.sequence:
                for start, end in (chunk_bounds(x.shape[0]) if self.chunked else []) or [(0, x.shape[0])]:
                    out, state, traces = self._call(torch.from_numpy(x[start:end]), state)
                    collect.add(out.numpy(), [t.numpy() for t in traces])
            else:
                for x_t in torch.from_numpy(x):
                    out, state = self._call(x_t, state)
                    collect.add(out.numpy()[None], [s.numpy()[None] for s in state])
        return collect.result([s.numpy() for s in state])


class FlatProgram(TorchScriptArtifact):
    """A step or sequence program loaded another way (a pt2 module, an AOTInductor package), called with
    the flat convention exactly like a flat TorchScript artifact; named ``<family>/<kind>/<variation>``."""

    def __init__(self, ctx: Context, artifact: str, fn: Callable, family: str, variation: str,
                 chunked: bool = False):
        self.entry = ctx.entry(artifact)
        self.fn = fn
        self.flat = True
        self.sequence = self.entry["kind"] == "sequence"
        self.chunked = chunked
        label = artifact.removeprefix(f"{family}_") + ("-chunked" if chunked else "")
        self.name = f"{family}/{label}/{variation}"


class TorchScriptNeuron(Backend):
    """The scripted ``LIFNeuron``'s stateful ``forward``."""

    def __init__(self, path: Path):
        self.module, _ = ts_format.load(path)
        self.name = "torchscript/neuron-forward/plain"

    def run(self, x: np.ndarray, states: Tensors) -> Tensors:
        return run_stateful(self.module, x, states["v"])


@register("torchscript")
def variants(ctx: Context) -> Iterator[Backend]:
    variations = list(TRANSFORMS) if ctx.full else ["plain", "frozen"]
    if ctx.usable("torchscript_step"):
        for variation in variations:
            yield TorchScriptArtifact(ctx, "torchscript_step", variation)
    if ctx.usable("torchscript_sequence"):
        for variation in variations:
            yield TorchScriptArtifact(ctx, "torchscript_sequence", variation)
        yield TorchScriptArtifact(ctx, "torchscript_sequence", "plain", chunked=True)
    for stateful in ("torchscript_neuron", "torchscript_network"):
        if ctx.usable(stateful):
            yield TorchScriptArtifact(ctx, stateful)
    if ctx.usable("torchscript_neuron"):
        yield TorchScriptNeuron(ctx.artifact("torchscript_neuron"))
