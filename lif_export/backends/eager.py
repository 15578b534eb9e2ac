"""Eager PyTorch: the reference (``LIFSequence``), ``LIFCell`` stepped, and the stateful ``LIFNeuron``.

The modules are rebuilt from the manifest's neuron parameters, so the
reference does not depend on any exported file.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..export.spec import NeuronSpec
from .base import Backend, Context, RunResult, register, stack_steps, torch_step_loop


class EagerSequence(Backend):
    """The reference: the functional ``lif_sequence`` loop (see :meth:`NeuronSpec.reference`)."""

    name = "eager/sequence"

    def __init__(self, spec: NeuronSpec):
        self.spec = spec

    def run(self, x: np.ndarray, v0: np.ndarray) -> RunResult:
        spike, v, trace = self.spec.reference(torch.from_numpy(x), torch.from_numpy(v0))
        return RunResult(spike.numpy(), v.numpy(), trace.numpy())


class EagerModule(Backend):
    """``LIFSequence.forward_trace`` as users call it (in eager mode: the fast path)."""

    name = "eager/LIFSequence"

    def __init__(self, spec: NeuronSpec):
        self.module = spec.sequence()

    def run(self, x: np.ndarray, v0: np.ndarray) -> RunResult:
        with torch.no_grad():
            spike, v, trace = self.module.forward_trace(torch.from_numpy(x), torch.from_numpy(v0))
        return RunResult(spike.numpy(), v.numpy(), trace.numpy())


class EagerCell(Backend):
    name = "eager/cell"

    def __init__(self, spec: NeuronSpec):
        self.module = spec.cell()

    def run(self, x: np.ndarray, v0: np.ndarray) -> RunResult:
        return torch_step_loop(self.module, x, v0)


class EagerNeuron(Backend):
    """The seed's stateful API: ``forward(x)`` with the state in buffers."""

    name = "eager/neuron"

    def __init__(self, spec: NeuronSpec):
        self.module = spec.neuron()

    def run(self, x: np.ndarray, v0: np.ndarray) -> RunResult:
        return run_stateful(self.module, x, v0)


def run_stateful(module, x: np.ndarray, v0: np.ndarray) -> RunResult:
    """Drive a (scripted or eager) ``LIFNeuron`` through ``forward``, seeding ``potential`` with ``v0``."""
    module.reset_state()
    spikes, trace = [], []
    with torch.no_grad():
        if x.shape[0]:
            module.potential = torch.from_numpy(v0.copy())
            module.spike = torch.zeros_like(module.potential)
        for t in range(x.shape[0]):
            spikes.append(module(torch.from_numpy(x[t])).numpy().copy())
            trace.append(module.potential.numpy().copy())
    v = module.potential.numpy().copy() if x.shape[0] else v0
    return stack_steps(spikes, trace, x, v)


@register("eager")
def variants(ctx: Context) -> Iterator[Backend]:
    if ctx.is_network:
        return
    spec = NeuronSpec.from_json(ctx.manifest["neuron"])
    yield EagerModule(spec)
    yield EagerCell(spec)
    yield EagerNeuron(spec)
