"""Property-based: eager, TorchScript and onnxruntime agree bit for bit on any valid neuron and input."""

import os

import numpy as np
import onnxruntime as ort
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lif_export.export import NeuronSpec, onnx_graphs
from tests.conftest import assert_bitwise_equal

DTYPES = {"float32": np.float32, "float64": np.float64}


@st.composite
def neuron_and_input(draw):
    dtype = draw(st.sampled_from(["float32", "float64"]))
    neurons = draw(st.integers(1, 6))
    batch = draw(st.integers(1, 4))
    steps = draw(st.integers(1, 25))
    per_neuron = draw(st.booleans())
    width = 32 if dtype == "float32" else 64
    unit = st.floats(0.0, 1.0, width=width)
    positive = st.floats(0.0009765625, 1024.0, width=width)  # exact in float32
    finite = st.floats(-10.0, 10.0, width=width)

    def param(strategy):
        return draw(st.lists(strategy, min_size=neurons, max_size=neurons)) if per_neuron else draw(strategy)

    spec = NeuronSpec(beta=param(unit), threshold=param(positive), v_reset=param(finite),
                      reset=draw(st.sampled_from(["zero", "subtract", "none"])), dtype=dtype)
    elements = st.floats(allow_nan=True, allow_infinity=True, width=width) | st.floats(-5, 5, width=width)
    x = draw(arrays(DTYPES[dtype], (steps, batch, neurons), elements=elements))
    v0 = draw(arrays(DTYPES[dtype], (batch, neurons), elements=st.floats(-5, 5, width=width)))
    return spec, x, v0


# LIF_HYPOTHESIS_EXAMPLES raises the example count for a longer local search.
@settings(max_examples=int(os.environ.get("LIF_HYPOTHESIS_EXAMPLES", "60")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(neuron_and_input())
def test_eager_torchscript_onnxruntime_agree(case):
    spec, x, v0 = case
    eager = spec.sequence()
    with torch.no_grad():
        e_spike, e_v, e_trace = eager.forward_trace(torch.from_numpy(x), torch.from_numpy(v0))
        s_spike, s_v, s_trace = torch.jit.script(eager).forward_trace(torch.from_numpy(x), torch.from_numpy(v0))
    session = ort.InferenceSession(onnx_graphs.sequence_graph(spec).SerializeToString())
    o_spike, o_v, o_trace = session.run(None, {"x": x, "v": v0})
    step = ort.InferenceSession(onnx_graphs.step_graph(spec).SerializeToString())
    v = v0
    for t in range(x.shape[0]):
        spike, v = step.run(None, {"x": x[t], "v": v})
        assert_bitwise_equal(spike, e_spike[t], f"onnx step spike t={t}")
        assert_bitwise_equal(v, e_trace[t], f"onnx step v t={t}")
    for name, got in [("torchscript", (s_spike, s_v, s_trace)), ("onnxruntime", (o_spike, o_v, o_trace))]:
        assert_bitwise_equal(got[0], e_spike, f"{name} spike")
        assert_bitwise_equal(got[1], e_v, f"{name} v_T")
        assert_bitwise_equal(got[2], e_trace, f"{name} trace")
