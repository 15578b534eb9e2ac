"""ONNX step and sequence graphs for a :class:`NeuronSpec`, built node by node.

The graphs are written directly with ``onnx.helper`` rather than traced, so
that every operation is exactly SPEC.md's: ``Mul`` then ``Add`` (never a
fused multiply-add), ``Greater``, ``Cast``, and ``Where`` / ``Mul``+``Sub``
for the reset. The same node list serves the step graph and the body of the
sequence graph's ``Loop``, so the two cannot drift apart.

Step graph:      x[batch, *F], v[batch, *F]          -> spike, v_next
Sequence graph:  x[time, batch, *F], v[batch, *F]    -> spike[time, ...], v_next, v_trace[time, ...]
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .spec import DYNAMIC_FEATURES, NeuronSpec

ONNX_DTYPES = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}

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


def _value_info(name: str, elem: int, dims: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, dims)


def _parameter_initializers(spec: NeuronSpec) -> list[onnx.TensorProto]:
    """``beta``, ``threshold`` (and ``v_reset`` for reset="zero") in the export dtype."""
    return [
        numpy_helper.from_array(t.numpy(), name=name)
        for name, t in spec.parameter_tensors().items()
        if name != "v_reset" or spec.reset == "zero"
    ]


def lif_nodes(spec: NeuronSpec, x: str, v: str, spike: str, v_next: str, prefix: str) -> list[onnx.NodeProto]:
    """SPEC.md's step as ONNX nodes; ``beta``, ``threshold``, ``v_reset`` are outer names."""
    u, bv, fired = f"{prefix}u", f"{prefix}beta_v", f"{prefix}fired"
    nodes = [
        helper.make_node("Mul", ["beta", v], [bv], name=f"{prefix}decay"),
        helper.make_node("Add", [bv, x], [u], name=f"{prefix}integrate"),
        helper.make_node("Greater", [u, "threshold"], [fired], name=f"{prefix}fire"),
        helper.make_node("Cast", [fired], [spike], to=ONNX_DTYPES[spec.dtype], name=f"{prefix}spike"),
    ]
    if spec.reset == "zero":
        nodes.append(helper.make_node("Where", [fired, "v_reset", u], [v_next], name=f"{prefix}reset_zero"))
    elif spec.reset == "subtract":
        drop = f"{prefix}drop"
        nodes += [
            helper.make_node("Mul", [spike, "threshold"], [drop], name=f"{prefix}reset_amount"),
            helper.make_node("Sub", [u, drop], [v_next], name=f"{prefix}reset_subtract"),
        ]
    else:
        nodes.append(helper.make_node("Identity", [u], [v_next], name=f"{prefix}no_reset"))
    return nodes


def _model(graph: onnx.GraphProto, opset: int, metadata: dict[str, str]) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name="lif_export",
        doc_string="LIF neuron (SPEC.md semantics); state is an explicit input/output.",
    )
    # The IR version the opset needs, not the newest onnx knows, so that older runtimes load it.
    model.ir_version = _ir_version_for(opset)
    helper.set_model_props(model, metadata)
    return model


def _ir_version_for(opset: int) -> int:
    for entry in onnx.helper.VERSION_TABLE:
        # (release, ir_version, ai.onnx opset, ai.onnx.ml opset, ...)
        if entry[2] == opset:
            return entry[1]
    return onnx.IR_VERSION


def step_graph(spec: NeuronSpec, opset: int = DEFAULT_OPSET, metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """One time step: ``(x, v) -> (spike, v_next)``."""
    elem = ONNX_DTYPES[spec.dtype]
    dims = step_dims(spec)
    graph = helper.make_graph(
        lif_nodes(spec, "x", "v", "spike", "v_next", prefix=""),
        "lif_step",
        inputs=[_value_info("x", elem, dims), _value_info("v", elem, dims)],
        outputs=[_value_info("spike", elem, dims), _value_info("v_next", elem, dims)],
        initializer=_parameter_initializers(spec),
    )
    return _model(graph, opset, metadata or {})


def sequence_graph(
    spec: NeuronSpec, opset: int = DEFAULT_OPSET, metadata: dict[str, str] | None = None
) -> onnx.ModelProto:
    """A ``Loop`` over a dynamic number of steps, state in and out.

    ``(x[time, batch, *F], v[batch, *F]) -> (spike[time, ...], v_next, v_trace[time, ...])``;
    feeding a stream in chunks with ``v <- v_next`` equals one unsplit run.
    ``Loop`` rather than ``Scan``: onnxruntime's ``Scan`` fails on ``time == 0``,
    ``Loop`` runs zero iterations and returns ``v_next = v``.
    """
    elem = ONNX_DTYPES[spec.dtype]
    dims = step_dims(spec)
    body = helper.make_graph(
        [helper.make_node("Gather", ["x", "t"], ["x_t"], axis=0, name="input_at_t")]
        + lif_nodes(spec, "x_t", "v_t", "spike_t", "v_next_t", prefix="")
        + [
            helper.make_node("Identity", ["cond"], ["cond_next"], name="keep_going"),
            helper.make_node("Identity", ["v_next_t"], ["v_trace_t"], name="record_trace"),
        ],
        "lif_loop_body",
        inputs=[
            helper.make_tensor_value_info("t", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            _value_info("v_t", elem, dims),
        ],
        outputs=[
            helper.make_tensor_value_info("cond_next", TensorProto.BOOL, []),
            _value_info("v_next_t", elem, dims),
            _value_info("spike_t", elem, dims),
            _value_info("v_trace_t", elem, dims),
        ],
    )
    nodes = [
        helper.make_node("Shape", ["x"], ["time_1d"], start=0, end=1, name="time_steps"),
        helper.make_node("Squeeze", ["time_1d"], ["time"], name="trip_count"),
        helper.make_node(
            "Loop", ["time", "", "v"], ["v_next", "spike_stacked", "v_trace_stacked"],
            body=body, name="time_loop",
        ),
        # With zero iterations the stacked outputs come back as [0, 0, ...];
        # reshape them to [time, *shape(v)] so every T gives the declared shape.
        helper.make_node("Shape", ["v"], ["state_shape"], name="state_shape"),
        helper.make_node("Concat", ["time_1d", "state_shape"], ["stacked_shape"], axis=0, name="stacked_shape"),
        helper.make_node("Reshape", ["spike_stacked", "stacked_shape"], ["spike"], name="spike_shape"),
        helper.make_node("Reshape", ["v_trace_stacked", "stacked_shape"], ["v_trace"], name="trace_shape"),
    ]
    graph = helper.make_graph(
        nodes,
        "lif_sequence",
        inputs=[_value_info("x", elem, ["time", *dims]), _value_info("v", elem, dims)],
        outputs=[
            _value_info("spike", elem, ["time", *dims]),
            _value_info("v_next", elem, dims),
            _value_info("v_trace", elem, ["time", *dims]),
        ],
        initializer=_parameter_initializers(spec),
    )
    return _model(graph, opset, metadata or {})


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
