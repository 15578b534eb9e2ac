"""Building ONNX graphs by hand: a small node builder, the semantics' arithmetic as nodes, and the
step / ``Scan`` sequence model around any step function.

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


#: The constant each arithmetic op leaves its other operand unchanged with (:meth:`Graph._unfoldable`).
NOOP_IDENTITY = {"Add": 0.0, "Sub": 0.0, "Mul": 1.0, "Div": 1.0}


class Graph:
    """Collects nodes under unique names; initializers are shared with nested (``Scan`` body, ``If`` branch) graphs."""

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

    def constant(self, name: str) -> np.ndarray | None:
        """The value of the initializer ``name``, or ``None`` when ``name`` is computed by a node."""
        for tensor in self.initializers:
            if tensor.name == name:
                return numpy_helper.to_array(tensor)
        return None

    def op1(self, op_type: str, inputs: Sequence[str], hint: str, **attrs: Any) -> str:
        """Add a node with one output; returns the output's name."""
        if op_type in NOOP_IDENTITY:
            inputs = self._unfoldable(op_type, inputs)
        name = self.fresh(hint)
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], name=self.fresh(f"node_{hint}"), **attrs))
        return name

    def _unfoldable(self, op_type: str, inputs: Sequence[str]) -> list[str]:
        """``inputs`` with each scalar float64 constant that onnxruntime's optimizer would take for the
        op's identity (``x + 0``, ``x * 1``) without being it expanded to the other operand's shape.

        onnxruntime's ``NoopElimination`` (1.32, ``noop_elimination.cc``) removes an ``Add``/``Sub`` of
        ``0`` and a ``Mul``/``Div`` by ``1``, but compares a float64 constant after casting it to float32:
        ``u - spike * (1 + 1e-10)`` would lose its ``Mul`` and ``u - 1e-114`` its ``Sub``. An ``Expand``
        to the runtime shape is not a constant, so the node stays (and computes the same value)."""
        identity = NOOP_IDENTITY[op_type]
        out = list(inputs)
        for i, name in enumerate(inputs):
            value = self.constant(name)
            if value is None or value.dtype != np.float64 or value.size != 1:
                continue
            with np.errstate(over="ignore"):
                if np.float32(value.reshape(-1)[0]) != identity or value.reshape(-1)[0] == identity:
                    continue
            other = inputs[1 - i]
            shape = self.op1("Shape", [other], f"{name}_shape_of_{other}")
            out[i] = self.op1("Expand", [name, shape], f"{name}_expanded")
        return out

    def output(self, op_type: str, inputs: Sequence[str], output: str, **attrs: Any) -> None:
        """Add a node writing the already reserved name ``output`` (a graph output)."""
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=self.fresh(f"node_{output}"),
                                           **attrs))

    def body(self) -> Graph:
        """A nested graph (a ``Scan`` body, an ``If`` branch) that sees this graph's initializers and names."""
        return Graph(self.initializers, self._names)


# -- the arithmetic of docs/semantics.md ------------------------------------------------------------------------

@dataclass(frozen=True)
class ResetLimit:
    """The bound of the zero reset's ``Min``: ``ceiling - spike`` when ``ceiling`` is set, else
    ``numerator / spike``, minus ``offset`` when that is set (arrays broadcast like the threshold)."""

    ceiling: np.ndarray | None = None
    numerator: np.ndarray | None = None
    offset: np.ndarray | None = None


def zero_reset_limit(threshold: np.ndarray, v_reset: np.ndarray) -> ResetLimit | None:
    """A :class:`ResetLimit` such that ``Min(u, limit)`` is the zero reset ``v_reset where u >
    threshold else u`` bit for bit, or ``None`` (then the reset stays a ``Where``): when some neuron
    has ``v_reset > threshold``, ``v_reset = -0.0`` (which no Sub or Div rounds to), or a non-finite
    parameter.

    Fired (``spike = 1``, ``u > threshold >= v_reset``, so ``u`` is above ``v_reset`` and not NaN):
    the limit rounds to exactly ``v_reset`` and ``Min`` returns it. Not fired (``spike = 0``, ``u <=
    threshold`` or NaN): the limit is ``ceiling >= threshold`` (nonzero, so a tie has ``u``'s bits) or
    ``+inf``, and ``Min`` returns ``u`` itself, a NaN with its payload (onnxruntime's ``Min``
    propagates a NaN operand unchanged; the conformance suite checks it). The cheapest form that is
    exact for every neuron: ``(v_reset + 1) - spike``, else ``v_reset / spike`` (all ``v_reset >
    0``), else ``k / spike - (k - v_reset)`` with ``k`` far below ``v_reset``'s ulp (``1`` for 0).
    """
    theta, reset = (a.reshape(-1) for a in np.broadcast_arrays(threshold, np.asarray(v_reset, threshold.dtype)))
    shape = np.broadcast_shapes(np.shape(threshold), np.shape(v_reset))
    bits = _bits(theta.dtype)
    if not (np.all(np.isfinite(theta)) and np.all(np.isfinite(reset)) and np.all(reset <= theta)
            and not np.any((reset == 0) & np.signbit(reset))):
        return None
    with np.errstate(over="ignore", under="ignore"):
        ceiling = reset + theta.dtype.type(1)
        if np.all(((ceiling - 1).view(bits) == reset.view(bits)) & (ceiling >= theta) & (ceiling != 0)):
            return ResetLimit(ceiling=ceiling.reshape(shape))
        if np.all(reset > 0):
            return ResetLimit(numerator=reset.reshape(shape))
        k = np.where(reset == 0, theta.dtype.type(1), np.spacing(np.abs(reset)) / 8).astype(theta.dtype)
        offset = k - reset
        if np.all((k > 0) & ((k - offset).view(bits) == reset.view(bits))):
            return ResetLimit(numerator=k.reshape(shape), offset=offset.reshape(shape))
    return None


def _bits(dtype: np.dtype) -> np.dtype:
    """The unsigned integer type as wide as the float ``dtype`` (to compare bits, NaN and -0.0 included)."""
    return np.dtype(f"u{dtype.itemsize}")


def _uniform(values: np.ndarray) -> np.ndarray:
    """``values`` as one scalar when every element has the same bits (a scalar operand is faster)."""
    flat = values.reshape(-1).view(_bits(values.dtype))
    return values.reshape(-1)[0].copy() if flat.size and np.all(flat == flat[0]) else values


def emit_zero_reset(g: Graph, u: str, fired: str, spike: str, threshold: str, v_reset: str, hint: str = "") -> str:
    """``v_reset where fired else u``, bit for bit. onnxruntime's ``Where`` builds two selections and
    merges them (about five elementwise operations' time), so when ``threshold`` and ``v_reset`` are
    constants with a :func:`zero_reset_limit`, the same bits come from ``Min(u, limit)``: one or two
    elementwise operations on ``spike`` and a ``Min``, each exact (no rounding reaches the result)."""
    theta, reset = g.constant(threshold), g.constant(v_reset)
    limit = None if theta is None or reset is None else zero_reset_limit(theta, reset)
    if limit is None:
        return g.op1("Where", [fired, v_reset, u], f"{hint}v_next")
    if limit.ceiling is not None:
        bound = g.op1("Sub", [g.const(f"{hint}reset_ceiling", _uniform(limit.ceiling)), spike], f"{hint}reset_limit")
    else:
        assert limit.numerator is not None
        bound = g.op1("Div", [g.const(f"{hint}reset_numerator", _uniform(limit.numerator)), spike],
                      f"{hint}reset_limit")
        if limit.offset is not None:
            bound = g.op1("Sub", [bound, g.const(f"{hint}reset_offset", _uniform(limit.offset))],
                          f"{hint}reset_limit_low")
    return g.op1("Min", [u, bound], f"{hint}v_next")


def emit_fire_and_reset(g: Graph, u: str, threshold: str, v_reset: str | None, reset: str,
                        elem: int, hint: str = "") -> tuple[str, str, str]:
    """``(spike, v_next, fired)``: strictly greater, then the reset (a select for "zero":
    :func:`emit_zero_reset`)."""
    fired = g.op1("Greater", [u, threshold], f"{hint}fired")
    spike = g.op1("Cast", [fired], f"{hint}spike", to=elem)
    if reset == "zero":
        assert v_reset is not None, "the zero reset needs v_reset"
        v_next = emit_zero_reset(g, u, fired, spike, threshold, v_reset, hint)
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


def _used_names(graph: onnx.GraphProto) -> set[str]:
    """Every name a node of ``graph`` or of its nested graphs reads, and the graph's outputs."""
    used = {o.name for o in graph.output}
    for node in graph.node:
        used.update(node.input)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                used |= _used_names(sub)
    return used


def make_model(graph: onnx.GraphProto, opset: int, metadata: dict[str, str]) -> onnx.ModelProto:
    """The model around ``graph``, without the constants no node reads (an emitter may make a
    parameter that a cheaper formulation then leaves unused, e.g. :func:`emit_zero_reset`'s)."""
    used = _used_names(graph)
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
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


def _scan_body(name: str, g: Graph, step: StepFn, x_dims: Dims, out: str, out_dims: Dims,
               states: Sequence[StateIO], elem: int) -> onnx.GraphProto:
    """One step as a ``Scan`` body: ``(*states, x_t) -> (*next states, out_t, *next states again)``
    (the state carried, and stacked as the trace); a name that is also an input or another output
    goes through an ``Identity``, since a graph output must be a value of its own."""
    body = g.body()
    state_in = [body.fresh(f"{s.input}_in") for s in states]
    x_t = body.fresh("x_t")
    result, new_states = step(body, x_t, state_in)
    carried = [body.op1("Identity", [n], f"{s.output}_carry") if n in state_in else n
               for n, s in zip(new_states, states, strict=True)]
    if result in (x_t, *state_in, *carried):
        result = body.op1("Identity", [result], f"{out}_t")
    traces = [body.op1("Identity", [n], f"{s.trace}_t") for n, s in zip(carried, states, strict=True)]
    return helper.make_graph(
        body.nodes, f"{name}_body",
        inputs=[*(_info(n, elem, s.dims) for n, s in zip(state_in, states, strict=True)), _info(x_t, elem, x_dims)],
        outputs=[*(_info(n, elem, s.dims) for n, s in zip(carried, states, strict=True)), _info(result, elem, out_dims),
                 *(_info(n, elem, s.dims) for n, s in zip(traces, states, strict=True))],
    )


def sequence_model(name: str, g: Graph, step: StepFn, x_dims: Dims, out: str, out_dims: Dims,
                   states: Sequence[StateIO], elem: int, opset: int, metadata: dict[str, str],
                   out_shape_of_state: int | None) -> onnx.ModelProto:
    """A ``Scan`` over a dynamic number of steps: ``(x[time, ...], *states) -> (out[time, ...],
    *final states, *traces[time, ...])``.

    ``Scan`` slices ``x`` in place and writes every step's outputs straight into the stacked
    results, so a step costs only its own nodes (a ``Loop`` gathers ``x[t]`` into a copy and
    concatenates its results at the end, several times slower). An iteration itself costs about a
    microsecond, so unrolling K steps per iteration gains nothing and costs copies: its stacked
    ``[T/K, K, ...]`` results become ``[T, ...]`` graph outputs only through a ``Reshape``, which
    onnxruntime copies (measured slower at every K). onnxruntime's ``Scan`` fails on
    ``time == 0``, so it sits in the ``else`` branch of an ``If (time == 0)`` whose ``then``
    branch returns the states unchanged and empty ``[0, ...]`` results: the output shaped like the
    state ``out_shape_of_state`` names, or, when it is like no state (``None``), like the output
    of the same ``Scan`` run for one step on zeros.
    """
    g.reserve("x", out, *(s.input for s in states), *(s.output for s in states), *(s.trace for s in states))
    body = _scan_body(name, g, step, x_dims, out, out_dims, states, elem)

    def scan(branch: Graph, x: str) -> list[str]:
        """``Scan`` over ``x`` from the graph's states: ``[out, *final states, *traces]``."""
        final = [branch.fresh(f"{s.output}_final") for s in states]
        stacked = [branch.fresh(f"{out}_stacked"), *(branch.fresh(f"{s.trace}_stacked") for s in states)]
        branch.nodes.append(helper.make_node("Scan", [*(s.input for s in states), x], [*final, *stacked], body=body,
                                             num_scan_inputs=1, name=branch.fresh("time_scan")))
        return [stacked[0], *final, *stacked[1:]]

    def steps_of(branch: Graph, count: int, step_shape: str, hint: str) -> str:
        """Zeros ``[count, *step_shape]``."""
        shape = branch.op1("Concat", [g.const(f"{hint}_steps", np.array([count], np.int64)), step_shape],
                           f"{hint}_shape", axis=0)
        return branch.op1("ConstantOfShape", [shape], f"{hint}_zeros",
                          value=numpy_helper.from_array(np.zeros(1, helper.tensor_dtype_to_np_dtype(elem))))

    no_steps = g.body()
    if out_shape_of_state is None:
        x_step = no_steps.op1("Shape", ["x"], "x_step_shape", start=1)
        probe = scan(no_steps, steps_of(no_steps, 1, x_step, "x_probe"))[0]
        out_step = no_steps.op1("Shape", [probe], f"{out}_step_shape", start=1)
    else:
        out_step = no_steps.op1("Shape", [states[out_shape_of_state].input], f"{out}_step_shape")
    no_steps_results = [steps_of(no_steps, 0, out_step, f"{out}_empty")]
    no_steps_results += [no_steps.op1("Identity", [s.input], f"{s.output}_unchanged") for s in states]
    no_steps_results += [steps_of(no_steps, 0, no_steps.op1("Shape", [s.input], f"{s.input}_shape"), s.trace)
                         for s in states]
    some_steps = g.body()
    some_steps_results = scan(some_steps, "x")

    time = g.op1("Squeeze", [g.op1("Shape", ["x"], "time_1d", start=0, end=1)], "time")
    empty = g.op1("Equal", [time, g.const("zero_steps", np.array(0, np.int64))], "no_steps")
    results = [out, *(s.output for s in states), *(s.trace for s in states)]
    dims: list[Dims] = [["time", *out_dims], *(s.dims for s in states), *(["time", *s.dims] for s in states)]

    def branch_graph(branch: Graph, branch_name: str, values: list[str]) -> onnx.GraphProto:
        return helper.make_graph(branch.nodes, branch_name, inputs=[],
                                 outputs=[_info(v, elem, d) for v, d in zip(values, dims, strict=True)])

    g.nodes.append(helper.make_node("If", [empty], results, name=g.fresh("time_if"),
                                    then_branch=branch_graph(no_steps, f"{name}_no_steps", no_steps_results),
                                    else_branch=branch_graph(some_steps, f"{name}_steps", some_steps_results)))
    graph = helper.make_graph(
        g.nodes, name,
        inputs=[_info("x", elem, ["time", *x_dims]), *(_info(s.input, elem, s.dims) for s in states)],
        outputs=[_info(r, elem, d) for r, d in zip(results, dims, strict=True)],
        initializer=g.initializers,
    )
    return make_model(graph, opset, metadata)
