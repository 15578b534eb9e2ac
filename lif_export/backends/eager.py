"""Eager PyTorch for a single neuron: the reference (``lif_sequence``), ``LIFSequence`` as users call
it, ``LIFCell`` stepped, and the stateful ``LIFNeuron``.

The modules are rebuilt from the manifest's neuron parameters, so the reference does not depend
on any exported file. (A network's eager reference is its golden vectors, computed at export.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from ..export.spec import NeuronSpec
from .base import Backend, Context, Tensors, neuron_result, register


class EagerSequence(Backend):
    """The reference: the functional ``lif_sequence`` loop (see :meth:`NeuronSpec.reference`)."""

    name = "eager/sequence"

    def __init__(self, spec: NeuronSpec):
        self.spec = spec

    def run(self, x: np.ndarray, states: Tensors) -> Tensors:
        spike, v, trace = self.spec.reference(torch.from_numpy(x), torch.from_numpy(states["v"]))
        return neuron_result(spike.numpy(), v.numpy(), trace.numpy())


class EagerModule(Backend):
    """``LIFSequence.forward_trace`` as users call it (in eager mode: the fast path)."""

    name = "eager/LIFSequence"

    def __init__(self, spec: NeuronSpec):
        self.module = spec.sequence()

    def run(self, x: np.ndarray, states: Tensors) -> Tensors:
        with torch.no_grad():
            spike, v, trace = self.module.forward_trace(torch.from_numpy(x), torch.from_numpy(states["v"]))
        return neuron_result(spike.numpy(), v.numpy(), trace.numpy())


def torch_step_loop(step: Callable, x: np.ndarray, v0: np.ndarray) -> Tensors:
    """Run ``step(x_t, v) -> (spike, v_next)`` (a torch module or method) once per time step."""
    spikes, trace, v = [], [], torch.from_numpy(v0)
    with torch.no_grad():
        for x_t in torch.from_numpy(x):
            s, v = step(x_t, v)
            spikes.append(s.numpy())
            trace.append(v.numpy())
    return stack_neuron_steps(spikes, trace, x, v.numpy())


def stack_neuron_steps(spikes: list[np.ndarray], trace: list[np.ndarray], x: np.ndarray, v: np.ndarray) -> Tensors:
    """A neuron's per-step outputs as one result (``T = 0`` included)."""
    if not spikes:
        empty = np.empty_like(x)
        return neuron_result(empty, np.broadcast_to(v, x.shape[1:]).copy(), empty.copy())
    return neuron_result(np.stack(spikes), v, np.stack(trace))


class EagerCell(Backend):
    name = "eager/cell"

    def __init__(self, spec: NeuronSpec):
        self.module = spec.cell()

    def run(self, x: np.ndarray, states: Tensors) -> Tensors:
        return torch_step_loop(self.module, x, states["v"])


class EagerNeuron(Backend):
    """The stateful API: ``forward(x)`` with the state in buffers."""

    name = "eager/neuron"

    def __init__(self, spec: NeuronSpec):
        self.module = spec.neuron()

    def run(self, x: np.ndarray, states: Tensors) -> Tensors:
        return run_stateful(self.module, x, states["v"])


def run_stateful(module: Any, x: np.ndarray, v0: np.ndarray) -> Tensors:
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
    return stack_neuron_steps(spikes, trace, x, v)


@register("eager")
def variants(ctx: Context) -> Iterator[Backend]:
    if ctx.is_network:
        return
    spec = NeuronSpec.from_json(ctx.manifest["neuron"])
    yield EagerModule(spec)
    yield EagerCell(spec)
    yield EagerNeuron(spec)
