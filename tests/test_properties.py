"""Property-based: eager, TorchScript and onnxruntime agree bit for bit on any valid neuron and input."""

import os

import numpy as np
import onnxruntime as ort
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lif_export.export import NeuronSpec
from lif_export.export.formats import onnx as onnx_format
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
    session = ort.InferenceSession(onnx_format.sequence_graph(spec).SerializeToString())
    o_spike, o_v, o_trace = session.run(None, {"x": x, "v": v0})
    step = ort.InferenceSession(onnx_format.step_graph(spec).SerializeToString())
    v = v0
    for t in range(x.shape[0]):
        spike, v = step.run(None, {"x": x[t], "v": v})
        assert_bitwise_equal(spike, e_spike[t], f"onnx step spike t={t}")
        assert_bitwise_equal(v, e_trace[t], f"onnx step v t={t}")
    for name, got in [("torchscript", (s_spike, s_v, s_trace)), ("onnxruntime", (o_spike, o_v, o_trace))]:
        assert_bitwise_equal(got[0], e_spike, f"{name} spike")
        assert_bitwise_equal(got[1], e_v, f"{name} v_T")
        assert_bitwise_equal(got[2], e_trace, f"{name} trace")


@st.composite
def network_and_input(draw):
    from lif_export.network import (
        AdaptiveLIFLayer,
        ExactLinear,
        LeakyIntegratorLayer,
        LIFLayer,
        RecurrentLIFLayer,
        SpikingSequential,
        SynapticLIFLayer,
    )

    torch.manual_seed(draw(st.integers(0, 2**16)))
    features = draw(st.integers(1, 6))
    layers, width = [], features
    for _ in range(draw(st.integers(1, 3))):
        size = draw(st.integers(1, 6))
        reset = draw(st.sampled_from(["zero", "subtract"]))
        beta = draw(st.sampled_from([0.0, 0.5, 0.9, 1.0]))
        kind = draw(st.sampled_from(["lif", "synaptic", "adaptive", "recurrent"]))
        if kind == "lif":
            model = LIFLayer(size, beta=beta, reset=reset, v_reset=-0.25)
        elif kind == "synaptic":
            model = SynapticLIFLayer(size, alpha=0.75, beta=beta, reset=reset)
        elif kind == "adaptive":
            model = AdaptiveLIFLayer(size, beta=beta, rho=0.9, b=0.25, reset=reset)
        else:
            model = RecurrentLIFLayer(size, beta=beta, reset=reset)
        layers += [ExactLinear(width, size), model]
        width = size
    layers += [ExactLinear(width, 2), LeakyIntegratorLayer(2, beta=0.75)]
    dtype = draw(st.sampled_from(["float32", "float64"]))
    net = SpikingSequential(*layers).to(torch.float32 if dtype == "float32" else torch.float64).eval()
    steps, batch = draw(st.integers(1, 12)), draw(st.integers(1, 3))
    x = draw(arrays(DTYPES[dtype], (steps, batch, features), elements=st.floats(-4, 4, width=32)))
    return net, dtype, x


@settings(max_examples=int(os.environ.get("LIF_HYPOTHESIS_EXAMPLES", "60")) // 3, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(network_and_input())
def test_networks_agree_across_eager_torchscript_onnxruntime(case):
    from lif_export.export.formats.onnx import sequence_graph
    from lif_export.export.model import NetworkModel

    net, dtype, x = case
    torch_dtype = torch.float32 if dtype == "float32" else torch.float64
    state = net.initial_state(x.shape[1], torch_dtype)
    with torch.no_grad():
        out, final, traces = net.forward_trace(torch.from_numpy(x), state)
        s_out, s_final, _ = torch.jit.script(net).forward_trace(torch.from_numpy(x), state)
    model = sequence_graph(NetworkModel(net, (x.shape[2],), dtype))
    states = net.state_names
    feed = {"x": x, **{n: s.numpy() for n, s in zip(net.state_names, state, strict=True)}}
    o_out, *o_rest = ort.InferenceSession(model.SerializeToString()).run(None, feed)
    assert_bitwise_equal(s_out, out, "torchscript out")
    assert_bitwise_equal(o_out, out.numpy(), "onnxruntime out")
    for k, name in enumerate(net.state_names):
        assert_bitwise_equal(s_final[k], final[k], f"torchscript {name}")
        assert_bitwise_equal(o_rest[k], final[k].numpy(), f"onnxruntime {name}")
        assert_bitwise_equal(o_rest[len(states) + k], traces[k].numpy(), f"onnxruntime {name} trace")
