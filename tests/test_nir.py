"""NIR in and out: lif_export -> NIR -> lif_export gives the same bits; the discretisation by hand; the
node mapping; refusals naming the node; graphs from snnTorch round-trip; the ``nir`` format and import."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from lif_export.network import (
    AdaptiveLIFLayer,
    ExactConv2d,
    ExactLinear,
    LeakyIntegratorLayer,
    LIFLayer,
    RecurrentLIFLayer,
    SpikingSequential,
    SynapticLIFLayer,
)
from tests.conftest import assert_bitwise_equal

nir = pytest.importorskip("nir", reason="the nir package is not installed (pip install 'lif_export[convert]')")

from lif_export.nir import from_nir, to_nir  # noqa: E402


def network() -> SpikingSequential:
    torch.manual_seed(0)
    net = SpikingSequential(
        ExactConv2d(1, 2, 3, padding=1), LIFLayer((2, 4, 4), beta=0.8, threshold=0.5, v_reset=-0.125), nn.Flatten(),
        ExactLinear(32, 12), SynapticLIFLayer(12, alpha=0.6, beta=torch.rand(12), threshold=0.75),
        ExactLinear(12, 10), LIFLayer(10, beta=0.3, reset="none", threshold=0.5),
        ExactLinear(10, 8), RecurrentLIFLayer(8, beta=0.9),
        ExactLinear(8, 6), LIFLayer(6, beta=1.0, threshold=0.5),
        ExactLinear(6, 3), LeakyIntegratorLayer(3, beta=0.95))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (ExactLinear, ExactConv2d)):
                module.weight.mul_(2.0)  # (exact) so that every layer spikes
    return net


def traces(net: SpikingSequential, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        out, _, states = net.forward_trace(x, net.initial_state(x.shape[1], x.dtype))
    return [out, *states]


@pytest.mark.parametrize("method", ["euler", "exp"])
def test_lif_export_network_round_trips_through_a_nir_file_bit_for_bit(tmp_path, method):
    net = network()
    graph = to_nir(net, dt=1e-3, method=method, feature_shape=(1, 4, 4))
    assert [type(n).__name__ for n in graph.nodes.values()] == [
        "Input", "Conv2d", "LIF", "Flatten", "Affine", "CubaLIF", "Affine", "LI", "Threshold", "Affine", "NIRGraph",
        "Affine", "IF", "Affine", "LI", "Output"]
    nir.write(tmp_path / "net.nir", graph)
    back = from_nir(tmp_path / "net.nir", report=None)  # dt and method from the metadata
    x = torch.randn(25, 3, 1, 4, 4) * 3
    expected, got = traces(net, x), traces(back, x)
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert_bitwise_equal(a, b, f"trace {i}")
    assert expected[0].abs().sum() > 0 and expected[-3].sum() > 0  # the readout moved; the recurrent layer spiked


def test_discretisation_by_hand():
    graph = nir.NIRGraph.from_list(
        nir.Affine(weight=np.array([[1.0, 2.0]]), bias=np.array([0.5])),
        nir.LIF(tau=np.array([0.01]), r=np.array([2.0]), v_leak=np.array([0.25]), v_threshold=np.array([1.0])))
    lines = []
    euler = from_nir(graph, dt=1e-3, exact=False, report=lines.append)
    assert float(euler.layers[1].beta) == np.float32(0.9)
    # the input scale dt*r/tau = 0.2 and the shift dt*v_leak/tau = 0.025 are folded into the Affine
    assert torch.equal(euler.layers[0].module.weight, torch.tensor([[0.2, 0.4]]))
    assert euler.layers[0].module.bias.item() == np.float32(0.5 * 0.2 + 0.025)
    assert any("folded into 'affine'" in line for line in lines)
    exp = from_nir(graph, dt=1e-3, method="exp", exact=False, report=None)
    gain = 1 - math.exp(-0.1)
    assert float(exp.layers[1].beta) == np.float32(math.exp(-0.1))
    assert exp.layers[0].module.weight[0, 1].item() == np.float32(2 * 2 * gain)
    scaled = nir.NIRGraph.from_list(nir.Linear(weight=np.array([[1.0, -1.0], [0.5, 0.25]])),
                                    nir.Scale(scale=np.array([2.0, 4.0])), nir.IF(r=np.ones(2), v_threshold=np.ones(2)))
    integrate = from_nir(scaled, dt=0.5, exact=False, report=None)  # Scale, then the IF's dt*r = 0.5
    assert torch.equal(integrate.layers[0].module.weight, torch.tensor([[1.0, -1.0], [1.0, 0.5]]))
    assert float(integrate.layers[1].beta) == 1.0
    with pytest.raises(ValueError, match="node 'scale': its input is scaled by 2..4.*no Affine, Linear or Conv2d"):
        from_nir(nir.NIRGraph.from_list(nir.Scale(scale=np.array([2.0, 4.0])), nir.IF(r=np.ones(2),
                                                                                       v_threshold=np.ones(2))),
                 dt=1.0, report=None)
    threshold = from_nir(nir.NIRGraph.from_list(nir.Threshold(threshold=np.array([0.5, 1.0]))), dt=1.0, report=None)
    x = torch.tensor([[[0.75, 0.75]], [[1.5, 1.0]]])
    assert threshold.forward_sequence(x, threshold.initial_state(1, x.dtype))[0].tolist() == [[[1, 0]], [[1, 0]]]


def test_what_nir_cannot_express_is_refused_naming_the_layer():
    cases = [(LIFLayer(3, reset="subtract"), "'0'.*subtract reset has no NIR node"),
             (LIFLayer(3, reset_timing="next_step"), "reset_timing='next_step'"),
             (AdaptiveLIFLayer(3), "no adaptive-threshold neuron"),
             (nn.MaxPool2d(2), "no max pooling node")]
    for layer, message in cases:
        with pytest.raises(ValueError, match=message):
            to_nir(SpikingSequential(layer), dt=1e-3, feature_shape=(3,) if not isinstance(layer, nn.MaxPool2d)
                   else (1, 4, 4))


def pooling_network() -> SpikingSequential:
    torch.manual_seed(1)
    net = SpikingSequential(ExactConv2d(1, 2, 3, padding=1), LIFLayer((2, 4, 4), beta=0.8, threshold=0.5),
                            nn.AvgPool2d(2), nn.AvgPool2d(2, divisor_override=1), nn.Flatten(), ExactLinear(2, 3),
                            LeakyIntegratorLayer(3, beta=0.9))
    with torch.no_grad():
        net.layers[0].module.weight.mul_(2.0)  # (exact) so that the neurons spike
    return net


def test_pooling_round_trips_as_nir_avgpool_and_sumpool_and_imports_in_the_float_tier(tmp_path):
    from lif_export.conformance.verify import verify_dir
    from lif_export.convert import cli_import
    from lif_export.export.manifest import load_manifest

    net = pooling_network()
    graph = to_nir(net, dt=1e-3, feature_shape=(1, 4, 4))
    assert [type(n).__name__ for n in graph.nodes.values()] == [
        "Input", "Conv2d", "LIF", "AvgPool2d", "SumPool2d", "Flatten", "Affine", "LI", "Output"]
    nir.write(tmp_path / "pool.nir", graph)
    back = from_nir(tmp_path / "pool.nir", report=None)
    x = torch.randn(20, 3, 1, 4, 4) * 3
    for i, (a, b) in enumerate(zip(traces(back, x), traces(net, x), strict=True)):
        assert_bitwise_equal(a, b, f"trace {i}")
    ones = torch.ones(1, 2, 4, 4)
    assert back.layers[3].module(ones).tolist() == [[[[4.0, 4.0], [4.0, 4.0]]] * 2]  # a sum over each 2x2 window

    lines: list[str] = []
    result = cli_import.import_nir(tmp_path / "pool.nir", None, tmp_path / "set", report=lines.append)
    assert result.manifest["exactness"] == "float"
    assert "c" not in {a["format"] for a in result.manifest["artifacts"]}
    assert any("float tier" in line and "AvgPool2d" in line for line in lines), lines
    assert load_manifest(tmp_path / "set")["network"]["layers"][3]["type"] == "AvgPool2d"
    report = verify_dir(tmp_path / "set", cases=["golden:random_unit", "random_unit"], progress=False)
    assert report.ok and report.exactness == "float"


def test_nir_nodes_without_a_layer_and_norse_time_constants_are_refused_naming_the_node():
    delay = nir.NIRGraph.from_list(nir.Delay(delay=np.array([1.0, 2.0])), type_check=False)
    with pytest.raises(ValueError, match="node 'delay': lif_export has no layer for NIR's Delay"):
        from_nir(delay, dt=1e-3, report=None)
    # Norse's to_nir: tau = dt / tau_mem_inv = 1e-3 / 100 (the default cell)
    norse_like = nir.NIRGraph.from_list(
        nir.Affine(weight=np.eye(2), bias=np.zeros(2)),
        nir.LIF(tau=np.full(2, 1e-5), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)))
    with pytest.raises(ValueError, match=r"node 'lif': tau = 1e-05 s is too short.*beta = -99.*norse_export_dt"):
        from_nir(norse_like, dt=1e-3, report=None)
    corrected = from_nir(norse_like, dt=1e-3, norse_export_dt=1e-3, exact=False, report=None)
    assert float(corrected.layers[1].beta) == np.float32(0.9)


@pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph is being deprecated")
def test_snntorch_graph_round_trips_with_its_parameters_unchanged(tmp_path):
    snn = pytest.importorskip("snntorch", reason="snnTorch not installed (pip install 'lif_export[convert]')")
    pytest.importorskip("nirtorch", reason="nirtorch (snnTorch's NIR export) not installed")
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(4)
    # per-neuron parameters: snnTorch's export of scalar ones fails nir's type check
    model = nn.Sequential(nn.Linear(6, 5), snn.Leaky(beta=torch.full((5,), 0.9), threshold=torch.ones(5),
                                                     init_hidden=True),
                          nn.Linear(5, 3), snn.Synaptic(alpha=torch.full((3,), 0.8), beta=torch.full((3,), 0.7),
                                                        threshold=torch.ones(3), init_hidden=True, output=True))
    written = export_to_nir(model, torch.randn(1, 6), ignore_dims=[0])
    nir.write(tmp_path / "snn.nir", written)
    net = from_nir(tmp_path / "snn.nir", dt=1e-4, exact=False, report=None)  # snnTorch writes for dt = 1e-4 s
    assert float(net.layers[1].beta) == np.float32(0.9) and float(net.layers[3].alpha) == np.float32(0.8)
    again = to_nir(net, dt=1e-4)
    for name, node in written.nodes.items():
        for field in ("tau", "r", "v_threshold", "v_reset", "tau_syn", "tau_mem", "w_in", "weight", "bias"):
            if hasattr(node, field):
                assert_bitwise_equal(np.asarray(getattr(again.nodes[name], field)), np.asarray(getattr(node, field)),
                                     f"{name}.{field}")
    lines = []
    exact = from_nir(tmp_path / "snn.nir", dt=1e-4, report=lines.append)
    assert isinstance(exact.layers[0].module, ExactLinear) and len(lines) == 2
    assert all("max |error|" in line for line in lines)


def test_nir_format_and_import_write_a_checked_set(tmp_path):
    from lif_export.conformance.verify import verify_dir
    from lif_export.convert import cli_import
    from lif_export.export import export_network
    from lif_export.export.manifest import load_manifest

    net = SpikingSequential(ExactLinear(4, 6), LIFLayer(6, beta=0.75), ExactLinear(6, 2), LeakyIntegratorLayer(2))
    result = export_network(net, (4,), tmp_path / "out", formats=["nir"])
    entry, = result.manifest["artifacts"]
    assert entry["format"] == "nir" and entry["file"] == "network.nir"
    graph = nir.read(tmp_path / "out" / "network.nir")
    assert float(graph.metadata["dt"]) == 1e-3
    imported = cli_import.import_nir(tmp_path / "out" / "network.nir", None, tmp_path / "in", None, report=None)
    assert {a["format"] for a in imported.manifest["artifacts"]} == set(cli_import.IMPORT_FORMATS)
    assert load_manifest(tmp_path / "in")["network"]["layers"][1]["type"] == "LIFLayer"
    report = verify_dir(tmp_path / "in", cases=["golden:random_unit", "random_unit"], progress=False)
    assert report.ok, [c.first_difference for c in report.mismatches][:3]
    assert {"torchscript", "onnxruntime", "c", "pt2"} <= {c.backend.split("/")[0] for c in report.comparisons}


@pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph is being deprecated")
def test_a_graph_from_norses_to_nir_is_refused_then_read_with_the_correction():
    nt = pytest.importorskip("norse.torch", reason="Norse not installed (pip install --no-deps norse)")
    from norse.torch.utils.export_nir import to_nir as norse_to_nir

    graph = norse_to_nir(nt.SequentialState(nn.Linear(4, 3), nt.LIFBoxCell()), torch.randn(1, 4))
    with pytest.raises(ValueError, match=r"tau = 1e-05 s is too short.*beta = -99"):
        from_nir(graph, dt=1e-3, report=None)
    net = from_nir(graph, dt=1e-3, norse_export_dt=1e-3, exact=False, report=None)
    assert float(net.layers[1].beta) == pytest.approx(0.9, abs=1e-7)  # 1 - dt * tau_mem_inv (float32 tau)
    assert to_nir(net, dt=1e-3).nodes["1"].tau.ravel()[0] == pytest.approx(0.01)  # written back corrected
