"""Export a whole :class:`SpikingSequential` as step and sequence graphs with every state explicit.

Writes, like the single-neuron export (and through the same staging, checks and manifest):

* ``network_step.onnx`` - ``(x, state.0.v, ...) -> (out, state.0.v_next, ...)``;
* ``network_sequence.onnx`` - a ``Loop`` over time: ``(x[time, ...], states) -> (out[time, ...],
  final states, state traces [time, ...])``;
* ``network_step.pt`` / ``network_sequence.pt`` / ``network_stateful.pt`` - the scripted network
  (``step``, ``forward_trace``) and the seed-style :class:`StatefulNetwork` (its ``step``), all
  called as ``(x, [states]) -> (out, [states] [, [traces]])`` ("state_list");
* ``vectors/<case>/`` golden vectors computed by the eager network;
* ``manifest.json`` with every state tensor, its pair and its initial value.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..export import ExportResult, embedded_metadata, progress_line, write_onnx, write_set, write_torchscript
from ..export import manifest as manifest_mod
from ..export.onnx_builder import ONNX_DTYPES, Graph, StateIO, sequence_model, step_model
from ..export.onnx_graphs import DEFAULT_OPSET, check_opset
from ..export.spec import DTYPES
from ..export.vectors import BATCH, save_tensor
from .protocol import StatefulLayer
from .sequential import SpikingSequential, StatefulNetwork

#: case name -> (description, steps, input generator over (shape, rng))
NETWORK_CASES: dict[str, tuple[str, int, Callable[[tuple, np.random.Generator], np.ndarray]]] = {
    "random": ("uniform inputs in [0, 1)", 40, lambda shape, rng: rng.random(shape)),
    "strong": ("uniform inputs in [0, 4): many spikes", 40, lambda shape, rng: 4 * rng.random(shape)),
    "constant": ("constant input 0.5", 40, lambda shape, rng: np.full(shape, 0.5)),
    "zeros": ("zero input", 10, lambda shape, rng: np.zeros(shape)),
}


def describe(net: SpikingSequential, dtype: str) -> dict:
    layers = []
    for i, layer in enumerate(net.layers):
        inner = getattr(layer, "module", layer)
        entry = {"index": i, "type": type(inner).__name__, "state": list(layer.state_names)}
        if isinstance(layer, StatefulLayer):
            entry["shape"] = list(layer.shape)
            entry["repr"] = layer.extra_repr()
        layers.append(entry)
    return {"layers": layers, "state_names": list(net.state_names), "dtype": dtype}


def export_network(
    net: SpikingSequential,
    feature_shape: tuple[int, ...],
    out_dir: str | Path = "models",
    dtype: str = "float32",
    opset: int = DEFAULT_OPSET,
    report: Callable[[str], None] | None = None,
    extra_cases: dict[str, tuple[str, np.ndarray]] | None = None,
) -> ExportResult:
    """Export ``net`` (eval mode) for inputs ``[batch, *feature_shape]``.

    ``extra_cases`` adds golden-vector cases of your own: name -> (description,
    ``x[time, batch, *feature_shape]``). Raises ``TypeError`` for a layer that
    cannot be exported bit-identically (e.g. an ordinary ``nn.Linear``), before
    anything is written.
    """
    if not isinstance(net, SpikingSequential):
        raise TypeError(f"net must be a SpikingSequential, got {type(net).__name__}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    opset = check_opset(opset)
    report = report or (lambda line: None)
    torch_dtype, np_dtype = DTYPES[dtype]
    net = net.to(torch_dtype).eval()
    elem = ONNX_DTYPES[dtype]

    states = [StateIO(n, f"{n}_next", f"{n}_trace", ["batch", *layer_shape(net, n)]) for n in net.state_names]

    def onnx_step(g: Graph, x: str, state: list[str]) -> tuple[str, list[str]]:
        return net.to_onnx(g, x, state, dtype)

    onnx_step(Graph(), "x", [s.input for s in states])  # refuses unexportable layers before writing
    try:
        with torch.no_grad():
            probe, _ = net.step(torch.zeros(1, *feature_shape, dtype=torch_dtype), net.initial_state(1, torch_dtype))
    except RuntimeError as err:
        raise ValueError(f"feature_shape {tuple(feature_shape)} does not fit the network: {err}") from None
    x_dims = ["batch", *feature_shape]
    out_dims = ["batch", *probe.shape[1:]]
    # The loop output can be reshaped like the last state when the network ends in a stateful layer.
    last = net.layers[-1]
    out_like = len(states) - len(last.state_names) if isinstance(last, StatefulLayer) else None

    def tensor(name: str, dims: list, time: bool = False) -> dict:
        return {"name": name, "dtype": dtype, "shape": (["time", *dims] if time else list(dims))}

    state_entries = [{"input": s.input, "output": s.output, "trace": s.trace, "initial_value": 0.0} for s in states]
    network = describe(net, dtype)
    step_io = {
        "inputs": [tensor("x", x_dims), *(tensor(s.input, s.dims) for s in states)],
        "outputs": [tensor("out", out_dims), *(tensor(s.output, s.dims) for s in states)],
        "state": state_entries, "network": network,
    }
    seq_io = {
        "inputs": [tensor("x", x_dims, True), *(tensor(s.input, s.dims) for s in states)],
        "outputs": [tensor("out", out_dims, True), *(tensor(s.output, s.dims) for s in states),
                    *(tensor(s.trace, s.dims, True) for s in states)],
        "state": state_entries, "network": network,
    }
    entries = [
        {"name": "onnx_step", "file": "network_step.onnx", "format": "onnx", "kind": "step", "method": "run",
         "opset": opset, "calling_convention": "flat", **step_io},
        {"name": "onnx_sequence", "file": "network_sequence.onnx", "format": "onnx", "kind": "sequence",
         "method": "run", "opset": opset, "calling_convention": "flat", **seq_io},
        {"name": "torchscript_step", "file": "network_step.pt", "format": "torchscript", "kind": "step",
         "method": "step", "calling_convention": "state_list", **step_io},
        {"name": "torchscript_sequence", "file": "network_sequence.pt", "format": "torchscript",
         "kind": "sequence", "method": "forward_trace", "calling_convention": "state_list", **seq_io},
        {"name": "torchscript_network", "file": "network_stateful.pt", "format": "torchscript",
         "kind": "stateful_network", "method": "step", "calling_convention": "state_list", **step_io},
    ]

    cases_x = {
        case: (description, make((steps, BATCH, *feature_shape), np.random.default_rng(j)))
        for j, (case, (description, steps, make)) in enumerate(NETWORK_CASES.items())
    }
    cases_x.update(extra_cases or {})

    def build(staging: Path) -> dict:
        total = len(entries) + len(cases_x)
        scripted = torch.jit.script(net)  # step and sequence artifacts are the same module, saved twice
        builders = {
            "onnx_step": lambda e: write_onnx(step_model("network_step", Graph(), onnx_step, x_dims, "out", out_dims,
                                                         states, elem, opset, embedded_metadata(e)),
                                              staging / e["file"], e),
            "onnx_sequence": lambda e: write_onnx(
                sequence_model("network_sequence", Graph(), onnx_step, x_dims, "out", out_dims, states, elem, opset,
                               embedded_metadata(e), out_like), staging / e["file"], e),
            "torchscript_step": lambda e: write_torchscript(scripted, staging / e["file"], e),
            "torchscript_sequence": lambda e: write_torchscript(scripted, staging / e["file"], e),
            "torchscript_network": lambda e: write_torchscript(torch.jit.script(StatefulNetwork(net)),
                                                               staging / e["file"], e),
        }
        for i, entry in enumerate(entries, 1):
            builders[entry["name"]](entry)
            report(progress_line(i, total, staging, entry))
        cases = []
        for j, (case, (description, x)) in enumerate(cases_x.items(), len(entries) + 1):
            x = np.ascontiguousarray(np.asarray(x).astype(np_dtype))
            cases.append(write_network_case(net, case, description, x, staging / "vectors" / case, dtype))
            report(f"[{j}/{total}] vectors/{case:<12} golden vectors, {x.shape[0]} steps x batch {x.shape[1]}")
        return manifest_mod.new_manifest(entries, cases, network=network)

    return write_set(out_dir, build)


def layer_shape(net: SpikingSequential, state_name: str) -> list[int]:
    """The per-sample shape of a state tensor named ``state.<layer>.<variable>``."""
    return list(net.layers[int(state_name.split(".")[1])].shape)


def write_network_case(net: SpikingSequential, case: str, description: str, x: np.ndarray, folder: Path,
                       dtype: str) -> dict:
    """Inputs, initial states (zeros) and the eager network's outputs, final states and traces."""
    folder.mkdir(parents=True, exist_ok=True)
    torch_dtype = DTYPES[dtype][0]
    initial = net.initial_state(x.shape[1], torch_dtype)
    with torch.no_grad():
        out, final, traces = net.forward_trace(torch.from_numpy(x), initial)
    inputs = {"x": x, **{n: s.numpy() for n, s in zip(net.state_names, initial, strict=True)}}
    outputs = {"out": out.numpy(), **{f"{n}_next": s.numpy() for n, s in zip(net.state_names, final, strict=True)},
               **{f"{n}_trace": t.numpy() for n, t in zip(net.state_names, traces, strict=True)}}
    for i, (name, array) in enumerate(inputs.items()):
        save_tensor(folder, f"input_{i}", name, array)
    for i, (name, array) in enumerate(outputs.items()):
        save_tensor(folder, f"output_{i}", name, array)

    def describe_tensor(name: str, array: np.ndarray) -> dict:
        return {"name": name, "dtype": dtype, "shape": list(array.shape)}

    return {
        "case": case, "dir": f"vectors/{case}", "steps": int(x.shape[0]), "description": description,
        "inputs": [describe_tensor(n, a) for n, a in inputs.items()],
        "outputs": [describe_tensor(n, a) for n, a in outputs.items()],
    }
