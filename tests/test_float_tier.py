"""The float tier: ordinary Linear, Conv2d, AvgPool2d and BatchNorm (folded) layers exported as float
operations, marked ``"exactness": "float"``, and judged by ``verify`` within tolerances."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from lif_export.cli import main as cli
from lif_export.conformance.compare import Tolerance, ToleranceComparison, compare_within
from lif_export.conformance.verify import verify_dir
from lif_export.export import export_network
from lif_export.export.manifest import load_manifest, sha256_file
from lif_export.export.model import NetworkModel
from lif_export.network import LeakyIntegratorLayer, LIFLayer, SpikingSequential

FEATURES = (1, 8, 8)


def _randomize(norm: nn.Module) -> nn.Module:
    """A BatchNorm with statistics and affine parameters far from the identity."""
    with torch.no_grad():
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.3, 3.0)
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-0.3, 0.3)
    return norm


def conv_net() -> SpikingSequential:
    torch.manual_seed(1)
    readout = nn.Linear(16, 6)
    with torch.no_grad():  # large enough that the last layer fires
        readout.weight.mul_(3.0)
        readout.bias.add_(0.3)
    return SpikingSequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), _randomize(nn.BatchNorm2d(4)),
                             LIFLayer((4, 4, 4)), nn.AvgPool2d(2), nn.Flatten(), readout, LIFLayer(6))


def linear_net() -> SpikingSequential:
    torch.manual_seed(2)
    return SpikingSequential(nn.Linear(6, 8, bias=False), _randomize(nn.BatchNorm1d(8)), LIFLayer(8),
                             nn.Linear(8, 3), LeakyIntegratorLayer(3))


@pytest.fixture(scope="module")
def conv_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("float_conv")
    export_network(conv_net(), FEATURES, out, formats=["onnx", "torchscript"])
    return out


def _inputs(shape: tuple[int, ...], steps: int = 30, batch: int = 3, dtype=np.float32) -> np.ndarray:
    return (np.random.default_rng(0).random((steps, batch, *shape)) * 2.0).astype(dtype)


def net_dtype(x: np.ndarray) -> torch.dtype:
    return torch.float64 if x.dtype == np.float64 else torch.float32


def _eager(net: SpikingSequential, x: np.ndarray) -> dict[str, np.ndarray]:
    """The unfolded network (BatchNorm as BatchNorm) in eval mode: the independent expectation."""
    net = net.eval().to(net_dtype(x))
    with torch.no_grad():
        out, _, traces = net.forward_trace(torch.from_numpy(x), net.initial_state(x.shape[1], net_dtype(x)))
    return {"out": out.numpy(), **{f"{n}_trace": t.numpy() for n, t in zip(net.state_names, traces, strict=True)}}


def _onnx_sequence(folder, x: np.ndarray, net: SpikingSequential) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(folder / "network_sequence.onnx"), providers=["CPUExecutionProvider"])
    feed = {"x": x, **{n: np.zeros(s.shape, x.dtype) for n, s in
                       zip(net.state_names, net.initial_state(x.shape[1], net_dtype(x)), strict=True)}}
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feed), strict=True))


def _agree(got: dict[str, np.ndarray], want: dict[str, np.ndarray], spikes: set[str]) -> ToleranceComparison:
    result = compare_within("test", "case", want, {k: got[k] for k in want}, Tolerance(), spikes)
    assert isinstance(result, ToleranceComparison)
    return result


def test_conv_batchnorm_network_exports_in_the_float_tier(conv_export):
    manifest = load_manifest(conv_export)
    assert manifest["exactness"] == "float"
    network = manifest["network"]
    assert network["spike_outputs"] == ["out"]
    assert network["layers"][1] == {"index": 1, "type": "BatchNorm2d", "state": [], "folded_into": 0}
    ops = {n.op_type for n in onnx.load(conv_export / "network_step.onnx").graph.node}
    assert {"Conv", "AveragePool", "MatMul"} <= ops and "BatchNormalization" not in ops


def test_folded_export_agrees_with_the_unfolded_eager_network(conv_export):
    """TorchScript and onnxruntime, run from the files, against the original network with its BatchNorm."""
    net = conv_net()
    x = _inputs(FEATURES)
    want = _eager(net, x)
    assert want["out"].sum() > 10  # the comparison sees spikes
    scripted = torch.jit.load(str(conv_export / "network_sequence.pt"))
    with torch.no_grad():
        out, _, traces = scripted.forward_trace(torch.from_numpy(x), net.initial_state(3, torch.float32))
    results = {"torchscript": {"out": out.numpy(), **{f"{n}_trace": t.numpy()
                                                      for n, t in zip(net.state_names, traces, strict=True)}},
               "onnxruntime": _onnx_sequence(conv_export, x, net)}
    for backend, got in results.items():
        result = _agree(got, want, {"out"})
        assert result.ok and result.spike_agreement >= 0.999, (backend, result)
        assert result.max_abs_dv < 1e-4, (backend, result.max_abs_dv)  # BatchNorm folded, not dropped
    assert not np.allclose(want["state.2.v_trace"], _eager(_without_batchnorm(net), x)["state.2.v_trace"])


def _without_batchnorm(net: SpikingSequential) -> SpikingSequential:
    layers = [getattr(layer, "module", layer) for layer in net.layers]
    return SpikingSequential(*(nn.Identity() if isinstance(m, nn.BatchNorm2d) else m for m in layers))


def test_linear_batchnorm1d_network_in_float64(tmp_path):
    net = linear_net()
    export_network(net, (6,), tmp_path, dtype="float64", formats=["onnx"])
    assert load_manifest(tmp_path)["exactness"] == "float"
    x = _inputs((6,), dtype=np.float64)
    want = _eager(net, x)
    result = _agree(_onnx_sequence(tmp_path, x, net), want, set())  # out is a leaky integrator's readout
    assert result.ok and result.max_abs_dv < 1e-12, result


def test_verify_reports_agreement_never_bit_identity(conv_export, tmp_path, capsys):
    report = verify_dir(conv_export, families=["onnxruntime", "torchscript"],
                        cases=["random_unit", "golden:special_values"], progress=False)
    assert report.ok and report.exactness == "float" and report.tolerance == Tolerance()
    assert {c.case for c in report.comparisons} == {"random_unit", "golden:random_unit", "golden:special_values"}
    assert all(isinstance(c, ToleranceComparison) and c.spike_values > 0 for c in report.comparisons)
    out_json = tmp_path / "report.json"
    assert cli(["verify", str(conv_export), "--no-progress", "--backend", "onnxruntime", "--case", "random_unit",
                "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "spike agreement" in text and "1st Δspike" in text and "float tier" in text
    assert "bit-identical" not in text and "MISMATCH" not in text
    data = json.loads(out_json.read_text())
    assert data["ok"] and data["exactness"] == "float" and data["tolerance"]["spike_agreement"] == 0.999
    assert all(c["spike_agreement"] >= 0.999 and "first_spike_step" in c for c in data["comparisons"])


def test_a_perturbed_artifact_fails_the_spike_agreement(conv_export, tmp_path, capsys):
    folder = tmp_path / "perturbed"
    folder.mkdir()
    for name in ("manifest.json", "network_sequence.onnx", "network_step.onnx", "network_sequence.pt"):
        (folder / name).write_bytes((conv_export / name).read_bytes())
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["file"] in
                             ("network_sequence.onnx", "network_step.onnx", "network_sequence.pt")]
    manifest["vectors"] = []
    graph = onnx.load(folder / "network_sequence.onnx")
    for init in graph.graph.initializer:
        if init.name.endswith("weight_t"):  # the Linear: every weight 5% larger
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * np.float32(1.05), init.name))
    onnx.save(graph, folder / "network_sequence.onnx")
    for entry in manifest["artifacts"]:
        entry["sha256"] = sha256_file(folder / entry["file"])
    (folder / "manifest.json").write_text(json.dumps(manifest))
    args = ["verify", str(folder), "--no-progress", "--backend", "onnxruntime", "--case", "random_small", "--summary"]
    assert cli(args) == 1
    text = capsys.readouterr().out
    assert "OUT OF TOLERANCE  onnxruntime/sequence" in text and "first spike difference at step" in text
    assert "bit-identical" not in text
    report = verify_dir(folder, families=["onnxruntime"], cases=["random_small"], progress=False)
    bad = [c for c in report.comparisons if not c.ok]
    assert bad and all(c.backend.startswith("onnxruntime/sequence") for c in bad)
    assert all(isinstance(c, ToleranceComparison) and c.spike_agreement < 0.999 for c in bad)
    assert all(c.first_spike_step is not None for c in bad)
    # the threshold is the user's: a loose enough one passes the same artifact
    assert cli([*args, "--spike-agreement", "0", "--atol", "100"]) == 0


def test_refusals_name_the_layer(tmp_path):
    with pytest.raises(TypeError, match=r"layer 0 \(BatchNorm1d\).*it is the network's first layer"):
        NetworkModel(SpikingSequential(nn.BatchNorm1d(4), LIFLayer(4)), (4,))
    with pytest.raises(TypeError, match=r"layer 2 \(BatchNorm1d\).*layer 1 is LIFLayer"):
        NetworkModel(SpikingSequential(nn.Linear(4, 4), LIFLayer(4), nn.BatchNorm1d(4)), (4,))
    with pytest.raises(ValueError, match=r"layer 0 \(Conv2d\): groups=2"):
        NetworkModel(SpikingSequential(nn.Conv2d(2, 2, 3, groups=2), LIFLayer((2, 2, 2))), (2, 4, 4))
    with pytest.raises(ValueError, match=r"layer 1 \(AvgPool2d\): ceil_mode=True"):
        NetworkModel(SpikingSequential(LIFLayer((1, 5, 5)), nn.AvgPool2d(2, ceil_mode=True)), (1, 5, 5))
    with pytest.raises(TypeError, match=r"cannot export ReLU to ONNX"):
        export_network(SpikingSequential(nn.Linear(3, 3), nn.ReLU(), LIFLayer(3)), (3,), tmp_path / "relu")
    with pytest.raises(TypeError, match=r"cannot export Linear to C \(layer 0\): .*exact tier.*to_exact"):
        export_network(linear_net(), (6,), tmp_path / "c", formats=["c"])
    with pytest.raises(TypeError, match=r"Conv2d to ONNX in float64: onnxruntime has no float64 Conv"):
        export_network(conv_net(), FEATURES, tmp_path / "f64", dtype="float64", formats=["onnx"])
    with pytest.raises(TypeError, match=r"cannot export BatchNorm1d \(layer 1\) in the exact tier"):
        NetworkModel(SpikingSequential(LIFLayer(4), nn.BatchNorm1d(4)), (4,), exactness="exact")
    with pytest.raises(ValueError, match="exactness must be None"):
        NetworkModel(conv_net(), FEATURES, exactness="approximate")
    assert not any((tmp_path / d).exists() for d in ("relu", "c", "f64"))


def test_exact_networks_and_tolerance_arguments():
    net = SpikingSequential(LIFLayer(3), nn.Flatten())
    assert NetworkModel(net, (3,)).exactness == "exact"
    assert NetworkModel(net, (3,), exactness="float").exactness == "float"
    for bad in ({"spike_agreement": 1.5}, {"atol": -1.0}, {"rtol": float("nan")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Tolerance(**bad)


def test_a_fresh_float_export_verifies_by_default_leaving_out_the_overflow_case(tmp_path, capsys):
    """`export` then `verify` as a user runs them: every case passes within the default tolerances, except
    'huge', whose sums overflow to inf in one summation order and stay finite in another: it is left out,
    with a note, unless asked for."""
    torch.manual_seed(0)
    torch.save(SpikingSequential(nn.Linear(8, 4), LIFLayer(4)), tmp_path / "net.pt")
    out = tmp_path / "out"
    assert cli(["export", "--network", str(tmp_path / "net.pt"), "--features", "8", "--out", str(out)]) == 0
    assert "float tier" in capsys.readouterr().out
    assert cli(["verify", str(out), "--no-progress", "--summary"]) == 0
    text = capsys.readouterr().out
    assert "NOTE      case 'huge' left out in the float tier" in text and "OK (float tier" in text
    report = verify_dir(out, families=["onnxruntime"], cases=["huge"], progress=False)
    assert {c.case for c in report.comparisons} == {"huge"} and not report.notes
