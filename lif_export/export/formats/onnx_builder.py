"""Building ONNX graphs by hand: a small node builder, the semantics' arithmetic as nodes, and the
step / ``Loop`` sequence model around any step function.

Every exported graph (the single neuron's and whole networks') is made here, so the LIF
arithmetic exists once as ONNX nodes (:func:`emit_lif`) and the time loop once (:func:`sequence_model`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ONNX_DTYPES = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}
Dims = Sequence[int | str]


class Graph:
    """Collects nodes under unique names; initializers are shared with nested (``Loop`` body) graphs."""

    def __init__(self, initializers: list[onnx.TensorProto] | None = None, names: set[str] | None = None):
        self.nodes: list[onnx.NodeProto] = []
        self.initializers = [] if initializers is None else initializers
        self._names = set() if names is None else names

    def fresh(self, hint: str) -> str:
        name, k = hint, 1
        while name in self._names:
            name, k = f"{hint}_{k}", k + 1
        self._names.add(name)
        return name

    def reserve(self, *names: str) -> None:
        self._names.update(names)

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name=name))
        return name

    def op1(self, op_type: str, inputs: Sequence[str], hint: str, **attrs: Any) -> str:
        """Add a node with one output; returns the output's name."""
        name = self.fresh(hint)
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], name=self.fresh(f"node_{hint}"), **attrs))
        return name

    def output(self, op_type: str, inputs: Sequence[str], output: str, **attrs: Any) -> None:
        """Add a node writing the already reserved name ``output`` (a graph output)."""
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=self.fresh(f"node_{output}"),
                                           **attrs))

    def body(self) -> Graph:
        """A nested graph (a ``Loop`` body) that sees this graph's initializers and names."""
        return Graph(self.initializers, self._names)


# -- the arithmetic of docs/semantics.md ------------------------------------------------------------------------

def emit_fire_and_reset(g: Graph, u: str, threshold: str, v_reset: str | None, reset: str,
                        elem: int, hint: str = "") -> tuple[str, str, str]:
    """``(spike, v_next, fired)``: strictly greater, then the reset (a select for "zero")."""
    fired = g.op1("Greater", [u, threshold], f"{hint}fired")
    spike = g.op1("Cast", [fired], f"{hint}spike", to=elem)
    if reset == "zero":
        assert v_reset is not None, "the zero reset needs v_reset"
        v_next = g.op1("Where", [fired, v_reset, u], f"{hint}v_next")
    elif reset == "subtract":
        v_next = g.op1("Sub", [u, g.op1("Mul", [spike, threshold], f"{hint}drop")], f"{hint}v_next")
    else:
        v_next = u
    return spike, v_next, fired


def emit_integrate(g: Graph, x: str, v: str, beta: str, hint: str = "") -> str:
    """``u = beta * v + x``: a ``Mul`` then an ``Add`` (two roundings, never fused)."""
    return g.op1("Add", [g.op1("Mul", [beta, v], f"{hint}beta_v"), x], f"{hint}u")


def emit_lif(g: Graph, x: str, v: str, beta: str, threshold: str, v_reset: str | None, reset: str,
             elem: int, hint: str = "") -> tuple[str, str]:
    """One LIF step: ``(spike, v_next)``."""
    spike, v_next, _ = emit_fire_and_reset(g, emit_integrate(g, x, v, beta, hint), threshold, v_reset, reset,
                                           elem, hint)
    return spike, v_next


# -- models around a step function ----------------------------------------------------------------

#: ``step(graph, x, states) -> (out, new_states)``, all tensor names.
StepFn = Callable[[Graph, str, list[str]], tuple[str, list[str]]]


@dataclass(frozen=True)
class StateIO:
    input: str
    output: str
    trace: str
    dims: Dims


def _info(name: str, elem: int, dims: Dims) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(dims))


def ir_version_for(opset: int) -> int:
    """The IR version the opset needs, not the newest onnx knows, so older runtimes load the model."""
    for entry in helper.VERSION_TABLE:
        if entry[2] == opset:  # (release, ir_version, ai.onnx opset, ...)
            return entry[1]
    return onnx.IR_VERSION


def make_model(graph: onnx.GraphProto, opset: int, metadata: dict[str, str]) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="lif_export",
                              doc_string="lif_export (docs/semantics.md); state is explicit input/output.")
    model.ir_version = ir_version_for(opset)
    helper.set_model_props(model, metadata)
    return model


def step_model(name: str, g: Graph, step: StepFn, x_dims: Dims, out: str, out_dims: Dims,
               states: Sequence[StateIO], elem: int, opset: int, metadata: dict[str, str]) -> onnx.ModelProto:
    """One time step: ``(x, *states) -> (out, *next states)``."""
    g.reserve("x", out, *(s.input for s in states), *(s.output for s in states))
    result, new_states = step(g, "x", [s.input for s in states])
    for internal, public in zip([result, *new_states], [out, *(s.output for s in states)], strict=True):
        g.output("Identity", [internal], public)
    graph = helper.make_graph(
        g.nodes, name,
        inputs=[_info("x", elem, x_dims), *(_info(s.input, elem, s.dims) for s in states)],
        outputs=[_info(out, elem, out_dims), *(_info(s.output, elem, s.dims) for s in states)],
        initializer=g.initializers,
    )
    return make_model(graph, opset, metadata)


def sequence_model(name: str, g: Graph, step: StepFn, x_dims: Dims, out: str, out_dims: Dims,
                   states: Sequence[StateIO], elem: int, opset: int, metadata: dict[str, str],
                   out_shape_of_state: int | None) -> onnx.ModelProto:
    """A ``Loop`` over a dynamic number of steps: ``(x[time, ...], *states) -> (out[time, ...],
    *final states, *traces[time, ...])``.

    ``Loop`` rather than ``Scan``: onnxruntime's ``Scan`` fails on ``time == 0``. With zero
    iterations the stacked outputs come back empty but mis-shaped, so they are reshaped to
    ``[time, *shape]``, ``shape`` that of a state (``out_shape_of_state`` names the state whose
    shape the output has; ``None`` leaves the output as the loop returns it).
    """
    g.reserve("x", out, *(s.input for s in states), *(s.output for s in states), *(s.trace for s in states))
    body = g.body()
    t, cond = body.fresh("t"), body.fresh("cond")
    state_in = [body.fresh(f"{s.input}_in") for s in states]
    x_t = body.op1("Gather", ["x", t], "x_t", axis=0)
    result, new_states = step(body, x_t, state_in)
    body_outputs = [body.op1("Identity", [cond], "cond_next")]
    body_outputs += [body.op1("Identity", [n], f"{s.output}_carry") for n, s in zip(new_states, states, strict=True)]
    body_outputs.append(body.op1("Identity", [result], f"{out}_t"))
    body_outputs += [body.op1("Identity", [n], f"{s.trace}_t") for n, s in zip(new_states, states, strict=True)]
    body_graph = helper.make_graph(
        body.nodes, f"{name}_body",
        inputs=[helper.make_tensor_value_info(t, TensorProto.INT64, []),
                helper.make_tensor_value_info(cond, TensorProto.BOOL, []),
                *(_info(n, elem, s.dims) for n, s in zip(state_in, states, strict=True))],
        outputs=[helper.make_tensor_value_info(body_outputs[0], TensorProto.BOOL, []),
                 *(_info(n, elem, s.dims) for n, s in zip(body_outputs[1:1 + len(states)], states, strict=True)),
                 _info(body_outputs[1 + len(states)], elem, out_dims),
                 *(_info(n, elem, s.dims) for n, s in zip(body_outputs[2 + len(states):], states, strict=True))],
    )
    time_1d = g.op1("Shape", ["x"], "time_1d", start=0, end=1)
    trip = g.op1("Squeeze", [time_1d], "trip_count")
    stacked = [g.fresh(f"{out}_stacked"), *(g.fresh(f"{s.trace}_stacked") for s in states)]
    g.nodes.append(helper.make_node("Loop", [trip, "", *(s.input for s in states)],
                                    [*(s.output for s in states), *stacked], body=body_graph,
                                    name=g.fresh("time_loop")))

    def finish(stacked_name: str, public: str, state: StateIO | None) -> None:
        if state is None:
            g.output("Identity", [stacked_name], public)
            return
        shape = g.op1("Concat", [time_1d, g.op1("Shape", [state.input], f"{state.input}_shape")],
                     f"{public}_shape", axis=0)
        g.output("Reshape", [stacked_name, shape], public)

    finish(stacked[0], out, None if out_shape_of_state is None else states[out_shape_of_state])
    for name_stacked, s in zip(stacked[1:], states, strict=True):
        finish(name_stacked, s.trace, s)
    graph = helper.make_graph(
        g.nodes, name,
        inputs=[_info("x", elem, ["time", *x_dims]), *(_info(s.input, elem, s.dims) for s in states)],
        outputs=[_info(out, elem, ["time", *out_dims]), *(_info(s.output, elem, s.dims) for s in states),
                 *(_info(s.trace, elem, ["time", *s.dims]) for s in states)],
        initializer=g.initializers,
    )
    return make_model(graph, opset, metadata)
