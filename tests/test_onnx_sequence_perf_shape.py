"""The shape of the ONNX graphs that makes them fast, held to the same bits as eager PyTorch.

onnxruntime's ``Where`` costs several elementwise operations, so the zero reset is a ``Min`` against
a limit built from the spike whenever the neuron's constants allow it (``zero_reset_limit`` in
``formats/onnx_builder.py``), and a ``Where`` otherwise. Each form is checked here bit for bit
against the eager reference on the hostile input cases (NaN payloads, +-inf, +-0, subnormals,
inputs at the threshold), in the step graph, the sequence graph whole and in chunks, ``T = 0``,
and in a network; and onnxruntime's full optimisation must not fuse the ``Mul`` and ``Add``.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from lif_export.cases import CASES
from lif_export.export import NeuronSpec
from lif_export.export.formats.onnx import sequence_graph, step_graph
from lif_export.export.formats.onnx_builder import zero_reset_limit
from lif_export.export.model import NetworkModel, NeuronModel
from lif_export.network import ExactLinear, LIFLayer, SpikingSequential
from tests.conftest import assert_bitwise_equal

HOSTILE = ("special_values", "at_threshold", "near_threshold_1ulp", "huge", "zeros", "subnormal", "random_large")

#: (threshold, v_reset, dtype) -> the operations that make the reset (besides Greater and Cast).
FORMS = {
    "ceiling - spike": ((1.0, 0.0, "float32"), {"Sub", "Min"}),
    "ceiling - spike, v_reset 0.25": ((1.0, 0.25, "float32"), {"Sub", "Min"}),
    "v_reset / spike": ((2.0, 0.5, "float32"), {"Div", "Min"}),
    "k / spike - offset, v_reset 0": ((2.0, 0.0, "float32"), {"Div", "Sub", "Min"}),
    "ceiling - spike, per neuron": (([0.5, 1.0, 1.5, 2.0], [-0.25, 0.0, 0.5, 2.0], "float32"), {"Sub", "Min"}),
    "k / spike - offset, per neuron": (([0.5, 1.0, 1.5, 2.0], [-0.25, 0.0, 0.25, 0.5], "float32"),
                                       {"Div", "Sub", "Min"}),
    "k / spike - offset, float64": ((1.0, -0.1, "float64"), {"Div", "Sub", "Min"}),
    "Where: v_reset above threshold": ((1.0, 1.5, "float32"), {"Where"}),
}


def _spec(threshold, v_reset, dtype) -> NeuronSpec:
    shape = (4,) if isinstance(threshold, list) else ("neurons",)
    return NeuronSpec(threshold=threshold, v_reset=v_reset, beta=0.9, dtype=dtype, feature_shape=shape)


def _session(graph: onnx.ModelProto, opt: str = "all") -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
                                        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}[opt]
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _reset_ops(graph: onnx.GraphProto) -> set[str]:
    """The operation types of ``graph`` and its nested graphs."""
    ops = set()
    for node in graph.node:
        ops.add(node.op_type)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                ops |= _reset_ops(sub)
    return ops


def _scan_body(graph: onnx.GraphProto) -> onnx.GraphProto:
    """The body of the first ``Scan`` in ``graph`` or its nested graphs."""
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Scan" and attr.name == "body":
                return attr.g
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                try:
                    return _scan_body(sub)
                except LookupError:
                    pass
    raise LookupError("no Scan")


def _inputs(model, case: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    return CASES[case].build(model.signature(), seed=3)


@pytest.mark.parametrize("form", FORMS)
def test_zero_reset_forms_equal_eager_bit_for_bit(form):
    (threshold, v_reset, dtype), ops = FORMS[form]
    model = NeuronModel(_spec(threshold, v_reset, dtype))
    step, sequence = step_graph(model), sequence_graph(model)
    reset_ops = {"Where", "Min", "Div", "Sub"}
    assert _reset_ops(step.graph) & reset_ops == ops, form
    assert _reset_ops(_scan_body(sequence.graph)) & reset_ops == ops, form
    step_session, sequence_session = _session(step), _session(sequence)
    for case in HOSTILE:
        x, states = _inputs(model, case)
        expected = model.reference(x, states)
        spike, v_next, v_trace = sequence_session.run(["spike", "v_next", "v_trace"], {"x": x, **states})
        assert_bitwise_equal(spike, expected["spike"], f"{form}/{case}: spike")
        assert_bitwise_equal(v_trace, expected["v_trace"], f"{form}/{case}: v_trace")
        assert_bitwise_equal(v_next, expected["v_next"], f"{form}/{case}: v_next")
        v = states["v"]
        for t in range(3):  # the step graph, a few steps
            s, v = step_session.run(["spike", "v_next"], {"x": x[t], "v": v})
            assert_bitwise_equal(s, expected["spike"][t], f"{form}/{case}: step {t} spike")
            assert_bitwise_equal(v, expected["v_trace"][t], f"{form}/{case}: step {t} v")


@pytest.mark.parametrize("opt", ["disabled", "all"])
def test_sequence_graph_lengths_and_chunks(opt):
    """``T = 0`` returns the state, ``T = 1`` and odd lengths run, and chunks with the state carried
    equal one unsplit run (and eager PyTorch)."""
    model = NeuronModel(NeuronSpec())
    session = _session(sequence_graph(model), opt)
    x, states = _inputs(model, "special_values")
    expected = model.reference(x, states)
    spike, v_next, v_trace = session.run(None, {"x": x[:0], **states})
    assert spike.shape == v_trace.shape == (0, *x.shape[1:])
    assert_bitwise_equal(v_next, states["v"], "T = 0 returns v")
    v, start = states["v"], 0
    for length in (1, 7, 2, 13, 1, 3):
        spike, v, v_trace = session.run(None, {"x": x[start:start + length], "v": v})
        assert_bitwise_equal(spike, expected["spike"][start:start + length], f"chunk at {start}: spike")
        assert_bitwise_equal(v_trace, expected["v_trace"][start:start + length], f"chunk at {start}: v_trace")
        start += length
    assert_bitwise_equal(v, expected["v_trace"][start - 1], "state after the chunks")


def test_network_mixes_min_and_where_resets():
    """A network whose layers take different forms (per-neuron Min, a Where for a reset above the
    threshold, the default) gives eager PyTorch's bits in every state."""
    torch.manual_seed(1)
    net = SpikingSequential(
        ExactLinear(6, 5), LIFLayer(5, threshold=[0.5, 1.0, 1.5, 2.0, 0.75], v_reset=-0.25),
        ExactLinear(5, 4), LIFLayer(4, threshold=0.5, v_reset=0.75),
        ExactLinear(4, 3), LIFLayer(3),
    )
    model = NetworkModel(net, (6,), "float32")
    graph = sequence_graph(model)
    ops = [n.op_type for n in _scan_body(graph.graph).node]
    assert ops.count("Where") == 1 and ops.count("Min") == 2, ops
    session = _session(graph)
    for case in ("special_values", "random_large", "zeros"):
        x, states = _inputs(model, case)
        expected = model.reference(x, states)
        names = [o.name for o in graph.graph.output]
        got = dict(zip(names, session.run(names, {"x": x, **states}), strict=True))
        for name, value in expected.items():
            assert_bitwise_equal(got[name], value, f"{case}: {name}")


def test_full_optimisation_keeps_mul_then_add(tmp_path):
    """onnxruntime's ORT_ENABLE_ALL rewrites leave the step's ``Mul`` and ``Add`` two operations
    (two roundings): the optimised Scan body has the same operations as the exported one."""
    graph = sequence_graph(NeuronSpec())
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
    optimized = onnx.load(str(tmp_path / "optimized.onnx"))
    body_ops = sorted(_reset_ops(optimized.graph) - {"If", "Scan", "Shape", "Squeeze", "Equal", "Concat",
                                                     "ConstantOfShape", "Identity"})
    assert body_ops == ["Add", "Cast", "Greater", "Min", "Mul", "Sub"], body_ops


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_reset_limit_is_v_reset_when_fired_and_above_threshold_otherwise(dtype):
    """The limit's two values, computed as onnxruntime computes them (in ``dtype``): exactly
    ``v_reset`` for ``spike = 1``, at least the threshold (and not zero) for ``spike = 0``; no limit
    for ``v_reset = -0.0`` or ``v_reset > threshold``."""
    rng = np.random.default_rng(0)
    threshold = rng.uniform(0.01, 50, 64).astype(dtype)
    v_reset = np.concatenate([threshold[:8], -threshold[8:16], np.zeros(8), rng.uniform(-50, 1, 40)]).astype(dtype)
    v_reset = np.minimum(v_reset, threshold)
    for t, r in [(threshold, v_reset), (threshold[:1], v_reset[8:9]), (threshold[:1], np.zeros(1, dtype))]:
        limit = zero_reset_limit(t, r)
        assert limit is not None
        with np.errstate(divide="ignore"):
            for spike in (dtype(1), dtype(0)):
                if limit.ceiling is not None:
                    value = limit.ceiling - spike
                else:
                    value = limit.numerator / spike - (0 if limit.offset is None else limit.offset)
                if spike:
                    assert_bitwise_equal(np.broadcast_to(value, r.shape), r, "fired: v_reset")
                else:
                    assert np.all(value >= t) and np.all(value != 0)
    assert zero_reset_limit(threshold[:1], np.array([-0.0], dtype)) is None
    assert zero_reset_limit(threshold[:1], threshold[:1] * 2) is None


@pytest.mark.parametrize("spec, x, v", [
    # Sub(limit, 6.45e-114): the offset is 0.0 as a float32
    (NeuronSpec(threshold=0.5, beta=0.0, v_reset=-6.454744033831806e-114, dtype="float64"), 1.0, 0.0),
    # Mul(spike, 1 + 1e-10): the threshold is 1.0 as a float32
    (NeuronSpec(threshold=1.0000000001, beta=0.5, reset="subtract", dtype="float64"), 2.0, 0.0),
    (NeuronSpec(threshold=1e300, beta=0.9999999999, reset="subtract", dtype="float64"), 0.0, 1.0),
])
def test_float64_constants_near_an_identity_survive_onnxruntimes_optimizer(spec, x, v):
    """onnxruntime's NoopElimination compares a float64 constant as a float32: x - 6e-114 and
    x * (1 + 1e-10) must not become x (found by the property test)."""
    graph = step_graph(NeuronModel(spec))
    xs, vs = np.array([[x]]), np.array([[v]])
    with torch.no_grad():
        spike, v_next = spec.cell()(torch.from_numpy(xs), torch.from_numpy(vs))
    for level in (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ort.GraphOptimizationLevel.ORT_ENABLE_ALL):
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        session = ort.InferenceSession(graph.SerializeToString(), options, providers=["CPUExecutionProvider"])
        got_spike, got_v = session.run(None, {"x": xs, "v": vs})
        assert_bitwise_equal(torch.from_numpy(got_spike), spike, f"spike at {level}")
        assert_bitwise_equal(torch.from_numpy(got_v), v_next, f"v_next at {level}")
