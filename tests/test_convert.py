"""Reset timings of LIFLayer (eager, TorchScript, ONNX), to_exact, and the snnTorch / Norse converters
checked against the libraries' own forward passes."""

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from lif_export.export.formats.onnx import sequence_graph
from lif_export.export.model import NetworkModel
from lif_export.network import ExactConv2d, ExactLinear, LIFLayer, SpikingSequential, to_exact
from tests.conftest import assert_bitwise_equal

# -- reset timings -----------------------------------------------------------------------------------


def run(layer: LIFLayer, xs: list[float]) -> tuple[list[float], list[float]]:
    state = layer.initial_state(1, torch.float32)
    spikes, potentials = [], []
    for x in xs:
        spike, state = layer.step(torch.tensor([[x]]), state)
        spikes.append(spike.item())
        potentials.append(state[0].item())
    return spikes, potentials


@pytest.mark.parametrize("reset, timing, spikes, potentials", [
    # beta = 0.5, threshold = 1 (all values exact): a spike at step 0 acts at step 1
    ("zero", "next_step", [1, 0, 0], [1.5, 0.25, 0.375]),          # step 1: 0.5*0 + 0.25
    ("subtract", "next_step", [1, 0, 0], [1.5, 0.0, 0.25]),       # step 1: 0.5*1.5 + 0.25 - 1
    ("subtract", "same_step", [1, 0, 0], [0.5, 0.5, 0.5]),
    # retest: 2.5 leaves 1.5 > 1 after the reset; the next step tests 0.75 + 0.25 - 1 = 0 and adds 1 back
    ("subtract", "same_step_retest", [1, 0, 0], [1.5, 1.0, 0.75]),
])
def test_reset_timings_by_hand(reset, timing, spikes, potentials):
    first = 2.5 if timing == "same_step_retest" else 1.5
    layer = LIFLayer(1, beta=0.5, threshold=1.0, reset=reset, reset_timing=timing)
    got_spikes, got_potentials = run(layer, [first, 0.25, 0.25])
    assert got_spikes == spikes
    assert got_potentials == potentials


def test_reset_timing_is_validated():
    with pytest.raises(ValueError, match=r"reset_timing must be one of \['same_step', 'next_step', "):
        LIFLayer(2, reset_timing="later")
    with pytest.raises(ValueError, match="same_step_retest' needs reset='subtract'"):
        LIFLayer(2, reset="zero", reset_timing="same_step_retest")


@pytest.mark.parametrize("reset, timing", [("zero", "next_step"), ("subtract", "next_step"), ("none", "next_step"),
                                           ("subtract", "same_step_retest")])
def test_reset_timings_are_bit_identical_in_torchscript_and_onnx(reset, timing):
    torch.manual_seed(0)
    net = SpikingSequential(ExactLinear(5, 12), LIFLayer(12, beta=torch.rand(12), reset=reset, reset_timing=timing,
                                                         v_reset=-0.25 if reset == "zero" else 0.0))
    model = NetworkModel(net, (5,))
    x = (torch.randn(30, 4, 5) * 3).numpy()
    x[4, 0, :] = np.inf
    x[6, 1, :] = np.nan
    x[8, 2, :] = -np.inf
    states = {s.input: np.zeros((4, 12), np.float32) for s in model.states}
    expected = model.reference(x, states)
    session = ort.InferenceSession(sequence_graph(model).SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x, **states}), strict=True))
    for name, value in expected.items():
        assert_bitwise_equal(got[name], value, f"onnx {name}")
    with torch.no_grad():
        out, _, traces = torch.jit.script(model.net).forward_trace(torch.from_numpy(x), [torch.zeros(4, 12)])
    assert_bitwise_equal(out, expected["out"], "torchscript out")
    assert_bitwise_equal(traces[0], expected["state.1.v_trace"], "torchscript v")


# -- to_exact ------------------------------------------------------------------------------------------


def test_to_exact_rounds_to_the_grid_and_reports_the_error():
    torch.manual_seed(0)
    net = SpikingSequential(nn.Linear(6, 4), LIFLayer(4), nn.Conv2d(1, 2, 3, padding=1, bias=False))
    lines, roundings = [], []
    exact = to_exact(net, report=lines.append, roundings=roundings)
    linear, conv = exact.layers[0].module, exact.layers[2].module
    assert isinstance(linear, ExactLinear) and isinstance(conv, ExactConv2d)
    assert isinstance(net.layers[0].module, nn.Linear)  # the original is untouched
    w = net.layers[0].module.weight.detach().double()
    expected = torch.round(w * 4096) / 4096
    assert torch.equal(linear.weight.detach().double(), expected)
    assert roundings[0].max_error == pytest.approx(float(max((expected - w).abs().max(),
                                                             (linear.bias.double() - net.layers[0].module.bias).abs()
                                                             .max())))
    assert roundings[0].max_error <= 2**-13 and len(lines) == 2 and "layers.0.module: Linear(6, 4)" in lines[0]
    assert torch.equal(conv.bias, torch.zeros(2))


def test_to_exact_coarser_grid_and_refusals():
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.3, -0.7, 0.01], [1.0, 2.0, -3.0]]))
    exact = to_exact(layer, grid_bits=4, report=None)
    assert torch.equal(exact.weight * 16, torch.round(exact.weight * 16))
    with pytest.raises(ValueError, match=r"grid_bits must be an integer from 0 to 12"):
        to_exact(layer, grid_bits=13)
    with pytest.raises(ValueError, match=r"0: cannot make Conv2d.*groups=2.*ExactConv2d is a groups-1"):
        to_exact(nn.Sequential(nn.Conv2d(2, 2, 3, stride=2, groups=2)), report=None)
    with torch.no_grad():
        layer.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"Linear\(3, 2\)\.weight has a non-finite value"):
        to_exact(layer, report=None)


# -- snnTorch ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def snn():
    return pytest.importorskip("snntorch", reason="snnTorch not installed (pip install 'lif_export[convert]')")


def snntorch_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    from snntorch import utils

    utils.reset(model)
    with torch.no_grad():
        outs = [model(x_t) for x_t in x]
    return torch.stack([o[0] if isinstance(o, tuple) else o for o in outs])


def converted_forward(net: SpikingSequential, x: torch.Tensor, script: bool = False) -> torch.Tensor:
    module = torch.jit.script(net) if script else net
    with torch.no_grad():
        return module.forward_sequence(x, net.initial_state(x.shape[1], x.dtype))[0]


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("delay", [True, False])
def test_snntorch_models_give_the_same_spikes(snn, reset, delay):
    from lif_export.convert import from_snntorch

    torch.manual_seed(0)
    kw = {"reset_mechanism": reset, "reset_delay": delay, "init_hidden": True}
    layers = [nn.Linear(10, 24), snn.Leaky(beta=0.5, **kw), nn.Linear(24, 16),
              snn.Leaky(beta=torch.rand(16), threshold=torch.rand(16) + 0.5, learn_beta=True, learn_threshold=True,
                        **kw), nn.Linear(16, 8)]
    zero_delay = reset == "zero" and delay  # Synaptic refuses it (test below)
    layers.append(snn.Leaky(beta=0.8, threshold=0.25, **kw) if zero_delay else snn.Synaptic(alpha=0.7, beta=0.8, **kw))
    model = nn.Sequential(*layers)
    x = torch.randn(40, 16, 10) * 2
    expected = snntorch_forward(model, x)
    net = from_snntorch(model, report=None)
    assert_bitwise_equal(converted_forward(net, x), expected, "eager")
    assert_bitwise_equal(converted_forward(net, x, script=True), expected, "torchscript")
    assert 0.01 < expected.mean() < 0.5  # the comparison saw spikes


def test_snntorch_potentials_match_and_same_step_differs_from_retest(snn):
    from lif_export.convert import from_snntorch

    torch.manual_seed(1)
    m = snn.Leaky(beta=0.5, reset_mechanism="subtract", reset_delay=False)
    retest = from_snntorch([m], feature_shape=(50,), report=None).layers[0]
    plain = from_snntorch([m], feature_shape=(50,), retest=False, report=None).layers[0]
    assert retest.reset_timing == "same_step_retest" and plain.reset_timing == "same_step"
    x = torch.randn(50, 20, 50) + 1
    mem, v, w, differ = torch.zeros(20, 50), [torch.zeros(20, 50)], [torch.zeros(20, 50)], 0
    with torch.no_grad():
        for x_t in x:
            spk, mem = m(x_t, mem)
            s1, v = retest.step(x_t, v)
            s2, w = plain.step(x_t, w)
            assert_bitwise_equal(s1, spk, "spike")
            assert_bitwise_equal(v[0], mem, "potential")
            differ += int((s2 != spk).sum())
    assert differ > 0


def test_snntorch_non_finite_input_differs_as_documented(snn):
    from lif_export.convert import from_snntorch

    m = snn.Leaky(beta=0.5, reset_mechanism="zero", reset_delay=False)
    layer = from_snntorch([m], feature_shape=(1,), report=None).layers[0]
    x = torch.tensor([[[math.inf]], [[0.5]], [[0.5]]])
    mem, v = torch.zeros(1, 1), [torch.zeros(1, 1)]
    with torch.no_grad():
        for x_t in x:
            _, mem = m(x_t, mem)
            _, v = layer.step(x_t, v)
    assert torch.isnan(mem).all()  # snnTorch: mem - 1 * mem with mem = inf
    assert v[0].item() == 0.75  # the select resets to 0, then 0.5 + 0.5*0.5


def test_snntorch_recurrent_on_the_grid_is_identical_and_off_grid_is_refused(snn):
    from lif_export.convert import from_snntorch

    torch.manual_seed(2)
    rleaky = snn.RLeaky(beta=0.75, linear_features=12, reset_mechanism="zero", reset_delay=False, init_hidden=True)
    with torch.no_grad():
        rleaky.recurrent.weight.copy_(torch.round(rleaky.recurrent.weight * 4096) / 4096)
        rleaky.recurrent.bias.zero_()
    model = nn.Sequential(nn.Linear(5, 12), rleaky)
    x = torch.randn(30, 8, 5) * 2
    net = from_snntorch(model, report=None)
    assert_bitwise_equal(converted_forward(net, x), snntorch_forward(model, x), "recurrent")
    with torch.no_grad():
        rleaky.recurrent.weight[0, 0] += 1e-5
    with pytest.raises(ValueError, match=r"layer 1 \(RLeaky\): its recurrent weights are not on the exact grid"):
        from_snntorch(model, report=None)


@pytest.mark.filterwarnings("ignore:Inhibition is an unstable feature")
def test_snntorch_refusals_name_the_layer(snn):
    from lif_export.convert import from_snntorch

    cases = [
        (snn.Synaptic(alpha=0.5, beta=0.5, reset_mechanism="zero", init_hidden=True), "sets the whole potential to 0"),
        (snn.Leaky(beta=0.5, inhibition=True, init_hidden=True), "inhibition=True"),
        (snn.Leaky(beta=0.5, graded_spikes_factor=2.0, init_hidden=True), "graded_spikes_factor"),
        (snn.Alpha(alpha=0.6, beta=0.5, init_hidden=True), "Alpha has no lif_export layer"),
        (snn.Leaky(beta=0.5, threshold=-1.0, init_hidden=True), "threshold"),
    ]
    for neuron, message in cases:
        with pytest.raises(ValueError, match=rf"layer 1.*{message}"):
            from_snntorch(nn.Sequential(nn.Linear(3, 4), neuron), report=None)


# -- Norse ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["LIFBoxCell", "LIFCell", "LICell"])
def test_norse_cells_agree_closely(kind):
    nt = pytest.importorskip("norse.torch", reason="Norse not installed (pip install --no-deps norse)")
    from lif_export.convert import from_norse

    torch.manual_seed(3)
    cell, linear = getattr(nt, kind)(), nn.Linear(8, 64)
    net = from_norse([linear, cell], report=None)
    x = torch.randn(60, 32, 8) * 4 + 2
    outs, state = [], None
    with torch.no_grad():
        for x_t in x:
            out, state = cell(linear(x_t), state)
            outs.append(out)
    expected, got = torch.stack(outs), converted_forward(net, x)
    if kind == "LICell":
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)  # a potential, rounded differently
    else:
        assert expected.mean() > 0.01
        assert int((got != expected).sum()) <= expected.numel() // 1000  # measured: 0 in 10^7 (docs/nir.md)


def test_snntorch_example_imports_with_identical_spikes_and_runs_both_tiers_everywhere(snn, tmp_path):
    pytest.importorskip("sklearn", reason="the digits example needs scikit-learn")
    from lif_export.examples.snntorch_example import run

    result = run(epochs=1, steps=3, out_dir=tmp_path, report=lambda line: None)
    assert result.spike_mismatches == 0 and result.spikes_compared == 450 * 3 * 10
    assert result.accuracy_imported == result.accuracy_snntorch > 0.3
    assert len(result.rounding) == 2 and 0.0 < result.accuracy_exact
    exact, floats = result.backend_accuracy["exact"], result.backend_accuracy["float"]
    assert {"onnxruntime", "torchscript", "c", "pt2"} <= {name.split("/")[0] for name in exact}
    assert {"onnxruntime", "torchscript", "pt2"} <= {name.split("/")[0] for name in floats}
    assert set(exact.values()) == {result.accuracy_exact}  # bit-identical backends: the same predictions
    # float tier: each backend sums nn.Linear its own way; a flipped prediction moves accuracy by 1/450
    assert all(abs(a - result.accuracy_imported) <= 2 / 450 for a in floats.values()), floats
