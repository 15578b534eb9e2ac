"""Networks: neuron models against hand-computed steps, the container, ExactLinear, whole-network export."""

from fractions import Fraction

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from lif_export.conformance.verify import verify_dir
from lif_export.export import export_network
from lif_export.export.manifest import load_manifest
from lif_export.network import (
    AdaptiveLIFLayer,
    ExactLinear,
    LeakyIntegratorLayer,
    LIFLayer,
    RecurrentLIFLayer,
    SpikingSequential,
    StatefulNetwork,
    SynapticLIFLayer,
)
from tests.conftest import assert_bitwise_equal


def run_layer(layer, xs):
    state = layer.initial_state(xs.shape[1], torch.float32)
    outs, states = [], []
    for x in xs:
        out, state = layer.step(x, state)
        outs.append(out)
        states.append([s.clone() for s in state])
    return torch.stack(outs), states


def test_synaptic_lif_hand_computed():
    layer = SynapticLIFLayer(1, alpha=0.5, beta=0.5, threshold=1.0)
    out, states = run_layer(layer, torch.tensor([[[1.0]], [[1.0]], [[0.0]], [[0.0]]]))
    # i: 1, 1.5, 0.75, 0.375; u: 1 (no spike: not > 1), 2.0 (spike), 0.75, 0.75
    assert out.flatten().tolist() == [0.0, 1.0, 0.0, 0.0]
    assert [s[0].item() for s in states] == [1.0, 1.5, 0.75, 0.375]
    assert [s[1].item() for s in states] == [1.0, 0.0, 0.75, 0.75]


def test_adaptive_lif_hand_computed():
    layer = AdaptiveLIFLayer(1, beta=0.5, threshold=1.0, rho=0.5, b=0.5)
    out, states = run_layer(layer, torch.tensor([[[1.5]], [[1.5]], [[1.5]], [[0.0]]]))
    # theta = 1 + a: 1, 1.5 (u = 1.5 does not exceed it), 1.25, 1.3125
    assert out.flatten().tolist() == [1.0, 0.0, 1.0, 0.0]
    assert [s[0].item() for s in states] == [0.0, 1.5, 0.0, 0.0]
    assert [s[1].item() for s in states] == [0.5, 0.25, 0.625, 0.3125]


def test_leaky_integrator_hand_computed():
    out, states = run_layer(LeakyIntegratorLayer(1, beta=0.5), torch.ones(3, 1, 1))
    assert out.flatten().tolist() == [1.0, 1.5, 1.75]


def test_recurrent_lif_hand_computed():
    layer = RecurrentLIFLayer(2, beta=0.5, threshold=1.0)
    with torch.no_grad():
        layer.recurrent.weight.copy_(torch.tensor([[0.0, 0.5], [0.25, 0.0]]))
    out, states = run_layer(layer, torch.tensor([[[1.5, 0.0]], [[0.0, 0.8]], [[0.0, 0.0]]]))
    # t1: recurrent input W @ [1, 0] = [0, 0.25] lifts neuron 1 to 1.05; t2: W @ [0, 1] = [0.5, 0]
    assert out[:, 0].tolist() == [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]
    assert states[2][0].flatten().tolist() == [0.5, 0.0]


def test_exact_linear_is_exact_and_order_independent():
    torch.manual_seed(0)
    layer = ExactLinear(300, 7)
    x = torch.randint(0, 17, (5, 300)).float() / 16  # on the grid
    y = layer(x)
    weight, bias = (t.detach() for t in layer.quantized())
    for row in range(5):
        for col in range(7):
            exact = sum(Fraction(float(x[row, k])) * Fraction(float(weight[col, k])) for k in range(300))
            exact += Fraction(float(bias[col]))
            assert y[row, col].item() == float(np.float32(float(exact)))
    perm = torch.randperm(300)
    with torch.no_grad():
        layer.weight.copy_(layer.weight[:, perm])
    assert_bitwise_equal(layer(x[:, perm]), y, "permuted summation order")


def all_models_network():
    torch.manual_seed(0)
    return SpikingSequential(
        ExactLinear(8, 16), LIFLayer(16, reset="subtract"), ExactLinear(16, 12), SynapticLIFLayer(12),
        ExactLinear(12, 10), AdaptiveLIFLayer(10), RecurrentLIFLayer(10), nn.Flatten(), nn.Dropout(0.5),
        ExactLinear(10, 4), LeakyIntegratorLayer(4),
    ).eval()


def test_container_state_protocol_and_scripting():
    net = all_models_network()
    assert net.state_names == ["state.1.v", "state.3.i", "state.3.v", "state.5.v", "state.5.a", "state.6.v",
                               "state.6.s", "state.10.v"]
    state = net.initial_state(3, torch.float32)
    assert [tuple(s.shape) for s in state] == [(3, 16), (3, 12), (3, 12), (3, 10), (3, 10), (3, 10), (3, 10), (3, 4)]
    x = torch.rand(25, 3, 8) * 3
    scripted = torch.jit.script(net)
    out, final, traces = net.forward_trace(x, state)
    s_out, s_final, s_traces = scripted.forward_trace(x, state)
    assert_bitwise_equal(s_out, out, "out")
    for a, b in zip(s_final + s_traces, final + traces, strict=True):
        assert_bitwise_equal(a, b)
    seq_out, seq_final = scripted.forward_sequence(x, state)
    assert_bitwise_equal(seq_out, out)
    stateful = torch.jit.script(StatefulNetwork(net))
    for t in range(5):
        assert_bitwise_equal(stateful(x[t]), out[t], f"stateful step {t}")
    stateful.reset_state()
    assert_bitwise_equal(stateful(x[0]), out[0])
    with pytest.raises(ValueError, match=r"state must have 8 tensors"):
        net.step(x[0], state[:2])


def test_network_trains_with_surrogate_gradients():
    torch.manual_seed(0)
    net = SpikingSequential(ExactLinear(4, 16), LIFLayer(16), ExactLinear(16, 2), LeakyIntegratorLayer(2))
    x = torch.rand(64, 4)
    y = (x[:, 0] > x[:, 1]).long()
    optimiser = torch.optim.Adam(net.parameters(), lr=0.02)
    losses = []
    for _ in range(40):
        optimiser.zero_grad()
        out, _ = net.forward_sequence(x.expand(8, -1, -1), net.initial_state(64, torch.float32))
        loss = nn.functional.cross_entropy(out.mean(0), y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_whole_network_export_verifies_with_every_model(tmp_path):
    net = all_models_network()
    manifest = export_network(net, (8,), tmp_path).manifest
    types = {layer["type"] for layer in manifest["network"]["layers"]}
    assert {"LIFLayer", "SynapticLIFLayer", "AdaptiveLIFLayer", "RecurrentLIFLayer", "LeakyIntegratorLayer",
            "ExactLinear", "Flatten", "Dropout"} <= types
    step = next(a for a in manifest["artifacts"] if a["name"] == "onnx_step")
    assert [t["name"] for t in step["inputs"]] == ["x", *net.state_names]
    assert [t["name"] for t in step["outputs"]] == ["out", *(f"{n}_next" for n in net.state_names)]
    session = ort.InferenceSession(str(tmp_path / "network_step.onnx"))
    assert [i.name for i in session.get_inputs()] == ["x", *net.state_names]
    report = verify_dir(tmp_path, progress=False)
    assert report.ok, [c.first_difference for c in report.mismatches][:3]
    assert len({c.backend for c in report.comparisons}) >= 8
    golden = [c for c in report.comparisons if c.case.startswith("golden:")]
    assert golden and all(c.ok for c in golden)


def test_network_export_refuses_inexact_layers(tmp_path):
    net = SpikingSequential(nn.Linear(4, 3), LIFLayer(3))
    with pytest.raises(TypeError, match=r"cannot export Linear \(layer 0\) in the exact tier: .*ExactLinear.*to_exact"):
        export_network(net, (4,), tmp_path / "out", exactness="exact")  # without it: the float tier
    assert not (tmp_path / "out").exists()


def test_network_sequence_graph_any_length_and_float64(tmp_path):
    net = SpikingSequential(ExactLinear(3, 5), LIFLayer(5), ExactLinear(5, 2), LeakyIntegratorLayer(2))
    export_network(net, (3,), tmp_path, dtype="float64")
    assert load_manifest(tmp_path)["network"]["dtype"] == "float64"
    session = ort.InferenceSession(str(tmp_path / "network_sequence.onnx"))
    for steps in (0, 1, 7):
        x = np.random.default_rng(steps).random((steps, 2, 3))
        feed = {"x": x, "state.1.v": np.zeros((2, 5)), "state.3.v": np.zeros((2, 2))}
        out = session.run(None, feed)
        assert out[0].shape == (steps, 2, 2)
        with torch.no_grad():
            want, _ = net.double().forward_sequence(torch.from_numpy(x), net.initial_state(2, torch.float64))
        assert_bitwise_equal(out[0], want.numpy())


def conv_network():
    from lif_export.network import ExactConv2d

    torch.manual_seed(0)
    return SpikingSequential(
        ExactConv2d(1, 4, 3, padding=1), LIFLayer((4, 8, 8)), nn.MaxPool2d(2), ExactConv2d(4, 6, 3),
        SynapticLIFLayer((6, 2, 2), reset="subtract"), nn.Flatten(), ExactLinear(24, 10), LeakyIntegratorLayer(10),
    ).eval()


def test_exact_conv2d_is_exact():
    from lif_export.network import ExactConv2d

    torch.manual_seed(1)
    conv = ExactConv2d(3, 2, 3, padding=1)
    x = torch.randint(0, 17, (1, 3, 5, 5)).float() / 16
    y = conv(x)
    weight, bias = (t.detach() for t in conv.quantized())
    padded = nn.functional.pad(x, (1, 1, 1, 1))
    for o, i, j in [(0, 0, 0), (1, 2, 3), (0, 4, 4)]:
        exact = Fraction(float(bias[o])) + sum(
            Fraction(float(padded[0, c, i + dy, j + dx])) * Fraction(float(weight[o, c, dy, dx]))
            for c in range(3) for dy in range(3) for dx in range(3))
        assert y[0, o, i, j].item() == float(np.float32(float(exact)))


def test_spiking_conv_network_exports_and_verifies(tmp_path):
    net = conv_network()
    manifest = export_network(net, (1, 8, 8), tmp_path).manifest
    step = next(a for a in manifest["artifacts"] if a["name"] == "onnx_step")
    assert step["inputs"][0]["shape"] == ["batch", 1, 8, 8]
    assert step["inputs"][1] == {"name": "state.1.v", "dtype": "float32", "shape": ["batch", 4, 8, 8]}
    report = verify_dir(tmp_path, progress=False)
    assert report.ok, [c.first_difference for c in report.mismatches][:3]


def test_conv_and_pool_that_cannot_be_reproduced_are_refused(tmp_path):
    for layer, size in ((nn.Conv2d(1, 2, 3), 8), (nn.MaxPool2d(2, padding=1), 9), (nn.AvgPool2d(2), 4)):
        with pytest.raises(TypeError, match="cannot export"):
            export_network(SpikingSequential(layer, nn.Flatten(), LIFLayer(size)), (1, 4, 4), tmp_path / "x",
                           exactness="exact")  # the float tier exports Conv2d and AvgPool2d (test_float_tier.py)
    with pytest.raises(ValueError, match=r"feature_shape \(1, 5, 5\) does not fit the network"):
        export_network(SpikingSequential(nn.Flatten(), LIFLayer(16)), (1, 5, 5), tmp_path / "x")
    assert not (tmp_path / "x").exists()
