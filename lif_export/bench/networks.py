"""The network workloads of ``lif-export bench``: the digits network (:mod:`lif_export.examples.digits`).

* **W4 stream** - per-step latency at batch 1: ``T`` steps of one image, state fed back, in eager
  PyTorch, TorchScript, onnxruntime from Python and (when built) C++.
* **W5 train** - training throughput: forward through ``T`` steps of a batch of images,
  cross-entropy on the time-averaged readout, backward, an Adam step; images per second.

Both are timed against the network's *twin*: the same layers with an ordinary ``nn.Linear`` in place
of every ``ExactLinear`` (same weights; its sums are not bit-exact across backends, it is the
speed an ordinary PyTorch network would have). The twin is a timing reference, not compared.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..backends.ort_session import make_session
from ..examples.digits import build_network, encode
from ..export.manifest import find_artifact, load_manifest
from ..network import ExactLinear, SpikingSequential
from .paths import BenchContext, BenchPath, BenchResult, cpp_rows, scratch_dir

FEATURES = (64,)


@functools.cache
def exported_network(seed: int = 0) -> Path:
    """The digits network (``seed``'s initial weights) exported to ONNX once per process."""
    from ..export import export_network

    out = scratch_dir("lif-bench-net-")
    export_network(digits_network(seed), FEATURES, out, formats=["onnx"])
    return out


def digits_network(seed: int = 0) -> SpikingSequential:
    torch.manual_seed(seed)
    return build_network()


def linear_twin(net: SpikingSequential) -> SpikingSequential:
    """``net`` with every ``ExactLinear`` replaced by an ``nn.Linear`` holding the same weights."""
    layers: list[nn.Module] = []
    for layer in net.layers:
        inner = getattr(layer, "module", layer)
        if isinstance(inner, ExactLinear):
            linear = nn.Linear(inner.in_features, inner.out_features, bias=inner.bias is not None)
            with torch.no_grad():
                linear.weight.copy_(inner.weight)
                if inner.bias is not None:
                    linear.bias.copy_(inner.bias)
            layers.append(linear)
        else:
            layers.append(copy.deepcopy(layer))
    return SpikingSequential(*layers)


def images(ctx: BenchContext) -> Tensor:
    """Digit-like images from the workload's input: ``[batch, 64]`` multiples of 1/16 in ``[0, 1]``."""
    return torch.round(ctx.x[0] / 0.6 * 16) / 16


# -- W4 ------------------------------------------------------------------------------------------

def w4_paths(ctx: BenchContext) -> list[BenchPath]:
    net = digits_network().eval()
    twin = linear_twin(net).eval()
    scripted = torch.jit.script(copy.deepcopy(net))
    x = encode(images(ctx), ctx.steps)  # [T, 1, 64]
    models = exported_network()
    step_session = make_session(models / "network_step.onnx", "all", ctx.threads)
    sequence_session = make_session(models / "network_sequence.onnx", "all", ctx.threads)
    entry = find_artifact(load_manifest(models), "onnx_step")
    step_outputs = [t["name"] for t in entry["outputs"]]
    zeros = {name: s.numpy() for name, s in zip(net.state_names, net.initial_state(x.shape[1], x.dtype), strict=True)}
    xn = x.numpy()

    def step_loop(model) -> Callable[[], Tensor]:
        def run():
            state, outs = model.initial_state(x.shape[1], x.dtype), []
            with torch.no_grad():
                for x_t in x:
                    out, state = model.step(x_t, state)
                    outs.append(out)
            return torch.stack(outs)
        return run

    def sequence(model) -> Callable[[], Tensor]:
        def run():
            with torch.no_grad():
                return model.forward_sequence(x, model.initial_state(x.shape[1], x.dtype))[0]
        return run

    def ort_steps():
        state, outs = dict(zeros), []
        for t in range(xn.shape[0]):
            result = dict(zip(step_outputs, step_session.run(step_outputs, {"x": xn[t], **state}), strict=True))
            outs.append(result[entry["outputs"][0]["name"]])
            state = {s["input"]: result[s["output"]] for s in entry["state"]}
        return np.stack(outs)

    def ort_sequence():
        return sequence_session.run(["out"], {"x": xn, **zeros})[0]

    return [
        BenchPath("eager nn.Linear twin, step per call", step_loop(twin), group=None,
                  note="timing reference: the same network with nn.Linear"),
        BenchPath("eager exact network, step per call", step_loop(net)),
        BenchPath("eager exact network, forward_sequence", sequence(net)),
        BenchPath("TorchScript exact network, step per call", step_loop(scripted)),
        BenchPath("TorchScript exact network, forward_sequence", sequence(scripted)),
        BenchPath("onnxruntime step graph, session.run per step", ort_steps),
        BenchPath("onnxruntime sequence graph", ort_sequence),
    ]


def cpp_w4(ctx: BenchContext) -> list[BenchResult]:
    """The C++ onnxruntime runner's own per-step timing of the network's step graph (``--bench``)."""
    return cpp_rows(ctx, "lif_ort_runner", exported_network(), workload="W4")


# -- W5 ------------------------------------------------------------------------------------------

def w5_paths(ctx: BenchContext) -> list[BenchPath]:
    batch = images(ctx)  # [B, 64]
    labels = torch.arange(batch.shape[0]) % 10
    x = encode(batch, ctx.steps)

    def train(net: SpikingSequential | torch.jit.ScriptModule) -> Callable[[], tuple[Tensor, ...]]:
        optimiser = torch.optim.Adam(net.parameters(), lr=2e-3)

        def run():
            optimiser.zero_grad()
            out, _ = net.forward_sequence(x, net.initial_state(x.shape[1], x.dtype))
            loss = nn.functional.cross_entropy(out.mean(0), labels)
            loss.backward()
            grads = tuple(p.grad.clone() for p in net.parameters() if p.grad is not None)
            optimiser.step()
            return (loss.detach(), *grads)
        return run

    return [
        BenchPath("eager nn.Linear twin", train(linear_twin(digits_network())), group=None,
                  note="timing reference: the same network with nn.Linear"),
        BenchPath("eager exact network", train(digits_network())),
        BenchPath("TorchScript exact network", train(torch.jit.script(digits_network()))),
    ]
