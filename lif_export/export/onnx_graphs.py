"""ONNX step and sequence graphs for a :class:`NeuronSpec`, built node by node.

The graphs are written node by node (:mod:`.onnx_builder`) rather than traced,
so that every operation is exactly SPEC.md's: ``Mul`` then ``Add`` (never a
fused multiply-add), ``Greater``, ``Cast``, and ``Where`` / ``Mul``+``Sub``
for the reset. The same step function serves the step graph and the body of
the sequence graph's ``Loop``, so the two cannot drift apart.

Step graph:      x[batch, *F], v[batch, *F]          -> spike, v_next
Sequence graph:  x[time, batch, *F], v[batch, *F]    -> spike[time, ...], v_next, v_trace[time, ...]
"""

from __future__ import annotations

import numpy as np
import onnx

from .onnx_builder import ONNX_DTYPES, Graph, StateIO, StepFn, emit_lif, sequence_model, step_model
from .spec import DYNAMIC_FEATURES, NeuronSpec

#: Oldest opset the graphs are built for (issue: 17 up to what onnxruntime runs).
MIN_OPSET = 17
#: Default opset: one every onnxruntime since 1.14 runs.
DEFAULT_OPSET = 17

STEP_INPUTS = ("x", "v")
STEP_OUTPUTS = ("spike", "v_next")
SEQUENCE_OUTPUTS = ("spike", "v_next", "v_trace")


def step_dims(spec: NeuronSpec) -> list[int | str]:
    """``[batch, *features]`` with dynamic dims named."""
    dims = ["batch"]
    for i, d in enumerate(spec.feature_shape):
        dims.append(d if isinstance(d, int) else (DYNAMIC_FEATURES if len(spec.feature_shape) == 1
                                                  else f"{DYNAMIC_FEATURES}_{i}"))
    return dims


def _lif_step(spec: NeuronSpec) -> tuple[Graph, StepFn]:
    """A graph holding the neuron's parameters, and its step on those names."""
    g = Graph()
    params = spec.parameter_tensors()
    beta = g.const("beta", params["beta"].numpy())
    threshold = g.const("threshold", params["threshold"].numpy())
    v_reset = g.const("v_reset", params["v_reset"].numpy()) if spec.reset == "zero" else None
    elem = ONNX_DTYPES[spec.dtype]

    def step(graph: Graph, x: str, states: list[str]) -> tuple[str, list[str]]:
        spike, v_next = emit_lif(graph, x, states[0], beta, threshold, v_reset, spec.reset, elem)
        return spike, [v_next]

    return g, step


def _state(spec: NeuronSpec) -> list[StateIO]:
    return [StateIO("v", "v_next", "v_trace", step_dims(spec))]


def step_graph(spec: NeuronSpec, opset: int = DEFAULT_OPSET, metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """One time step: ``(x, v) -> (spike, v_next)``."""
    g, step = _lif_step(spec)
    dims = step_dims(spec)
    return step_model("lif_step", g, step, dims, "spike", dims, _state(spec), ONNX_DTYPES[spec.dtype], opset,
                      metadata or {})


def sequence_graph(
    spec: NeuronSpec, opset: int = DEFAULT_OPSET, metadata: dict[str, str] | None = None
) -> onnx.ModelProto:
    """A ``Loop`` over a dynamic number of steps, state in and out.

    ``(x[time, batch, *F], v[batch, *F]) -> (spike[time, ...], v_next, v_trace[time, ...])``;
    feeding a stream in chunks with ``v <- v_next`` equals one unsplit run.
    """
    g, step = _lif_step(spec)
    dims = step_dims(spec)
    return sequence_model("lif_sequence", g, step, dims, "spike", dims, _state(spec), ONNX_DTYPES[spec.dtype],
                          opset, metadata or {}, out_shape_of_state=0)


def check(model: onnx.ModelProto) -> None:
    """``onnx.checker`` with full shape inference."""
    onnx.checker.check_model(model, full_check=True)


def newest_runnable_opset() -> int:
    """The newest opset that both onnx and the installed onnxruntime run."""
    import onnxruntime as ort

    spec = NeuronSpec()
    x = np.zeros((1, 1, 1), dtype=np.float32)
    newest = MIN_OPSET
    for opset in range(MIN_OPSET, onnx.defs.onnx_opset_version() + 1):
        try:
            for model in (step_graph(spec, opset), sequence_graph(spec, opset)):
                session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
                feed = {"x": x if model.graph.name == "lif_sequence" else x[0], "v": x[0]}
                session.run(None, feed)
        except Exception:  # noqa: BLE001 - any refusal means "not supported"
            break
        newest = opset
    return newest


def check_opset(opset: int) -> int:
    """Raise a clear error for an opset these graphs cannot be built or run at."""
    newest = newest_runnable_opset()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= newest:
        raise ValueError(
            f"opset must be an integer from {MIN_OPSET} to {newest} (the newest the installed "
            f"onnxruntime runs), got {opset!r}"
        )
    return int(opset)
