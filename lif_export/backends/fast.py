"""The fast paths (:mod:`lif_export.fast`) as conformance backends: they must give the same bits."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..export.spec import NeuronSpec
from ..fast import simulate
from .base import Backend, Context, Tensors, neuron_result, register
from .eager import stack_neuron_steps
from .ort_stream import OnnxStepStream


class FastSimulate(Backend):
    name = "fast/simulate"

    def __init__(self, spec: NeuronSpec):
        self.params = spec.parameter_tensors()
        self.reset = spec.reset

    def run(self, x: np.ndarray, states: Tensors) -> Tensors:
        p = self.params
        spikes, v, trace = simulate(torch.from_numpy(x), torch.from_numpy(states["v"]), p["beta"], p["threshold"],
                                    p["v_reset"], self.reset, return_trace=True)
        assert trace is not None
        return neuron_result(spikes.numpy(), v.numpy(), trace.numpy())


class FastStream(Backend):
    name = "fast/onnx-stream"

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def run(self, x: np.ndarray, states: Tensors) -> Tensors:
        stream = OnnxStepStream(self.ctx.models_dir, x.shape[1:], manifest=self.ctx.manifest)
        stream.reset(v=states["v"])
        spikes, trace = [], []
        for t in range(x.shape[0]):
            spikes.append(stream.step(x[t]).copy())
            trace.append(stream.state("v"))
        return stack_neuron_steps(spikes, trace, x, stream.state("v"))


@register("fast")
def variants(ctx: Context) -> Iterator[Backend]:
    if ctx.is_network:
        return
    yield FastSimulate(NeuronSpec.from_json(ctx.manifest["neuron"]))
    if ctx.usable("onnx_step"):
        yield FastStream(ctx)
