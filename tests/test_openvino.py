"""The OpenVINO format and backend: a stateful IR (ReadValue/Assign) of the ONNX step graph on the CPU plugin."""

import hashlib
import subprocess

import numpy as np
import pytest
import torch

from lif_export.backends.cpp_runners import cpp_build_dir
from lif_export.backends.openvino import OpenVinoStep
from lif_export.cases import CASES
from lif_export.conformance.verify import verify_dir
from lif_export.export import export, export_network
from lif_export.export.model import NeuronModel
from lif_export.export.spec import NeuronSpec
from lif_export.network import AdaptiveLIFLayer, ExactLinear, LeakyIntegratorLayer, LIFLayer, SpikingSequential
from tests.conftest import assert_bitwise_equal

ov = pytest.importorskip("openvino", reason="the openvino format needs `pip install 'lif_export[openvino]'`")


@pytest.fixture(scope="module")
def neuron_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("openvino_neuron")
    manifest = export(out_dir=out, formats=["openvino"]).manifest
    return out, next(a for a in manifest["artifacts"] if a["name"] == "openvino_step")


def _run_case(step: OpenVinoStep, name: str) -> tuple[dict, dict]:
    model = NeuronModel(NeuronSpec())
    x, states = CASES[name].build(model.signature())
    return model.reference(x, states), step.run(x, states)


def test_ir_is_stateful_with_checksummed_weights(neuron_dir):
    out, entry = neuron_dir
    assert entry["file"] == "lif_step.xml" and entry["calling_convention"] == "stateful"
    assert entry["runtime_config"] == {"INFERENCE_PRECISION_HINT": "f32"}
    [companion] = entry["companions"]
    assert companion["file"] == "lif_step.bin"
    assert hashlib.sha256((out / "lif_step.bin").read_bytes()).hexdigest() == companion["sha256"]
    model = ov.Core().read_model(str(out / "lif_step.xml"))
    ops = [op.get_type_name() for op in model.get_ordered_ops()]
    assert [i.get_any_name() for i in model.inputs] == ["x"]
    assert [o.get_any_name() for o in model.outputs] == ["spike"]
    assert ops.count("ReadValue") == ops.count("Assign") == 1
    assert "Greater" not in ops and "Less" in ops  # the NaN-safe comparison (module docstring)


def test_f32_hint_keeps_near_threshold_cases(neuron_dir):
    """With the manifest's f32 hint the near-threshold cases (u within 0-2 ulp of theta) are exact."""
    out, entry = neuron_dir
    step = OpenVinoStep(entry, out / entry["file"])
    for name in ("near_threshold", "at_threshold", "near_threshold_1ulp"):
        want, got = _run_case(step, name)
        for key in want:
            assert_bitwise_equal(got[key], want[key], f"{name} {key}")


def test_plugin_default_precision_breaks_them(neuron_dir):
    """Without the hint the CPU plugin may infer in bf16 (CPUs with bf16 support): then the same
    cases differ, which is why the hint is part of the manifest entry."""
    out, entry = neuron_dir
    if ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT") != ov.Type.bf16:
        pytest.skip("this CPU's plugin default inference precision is f32: nothing to show")
    want, got = _run_case(OpenVinoStep(entry, out / entry["file"], config={}), "near_threshold")
    assert want["v_trace"].tobytes() != got["v_trace"].tobytes()


def test_verify_and_recorded_deviation(neuron_dir):
    """Every case is bit-identical except one: a state set through the plugin's set_state loses the
    sign of -0.0 (the `zeros` case starts from -0.0); the manifest records it and verify reports it."""
    out, entry = neuron_dir
    report = verify_dir(out, families=["openvino"], progress=False)
    assert not report.errors and not report.checksum_failures
    bad = [c for c in report.comparisons if not c.ok]
    assert {c.case for c in bad} <= {"zeros"}, [(c.case, c.first_difference) for c in bad]
    assert (entry.get("deviation") is None) == (not bad)
    if bad:
        assert entry["deviation"] == f"case {bad[0].case}: {bad[0].first_difference}"


def test_sum_of_two_nans_is_eagers_nan(neuron_dir):
    """v = -NaN after step 0, then x = +NaN: eager's beta * v + x keeps x's NaN, and so does the IR
    (its Adds are rewritten; the plugin's fused kernel alone keeps beta * v's)."""
    out, entry = neuron_dir
    x = np.array([0xFFC00000, 0x7FC00000], np.uint32).view(np.float32).reshape(2, 1, 1)
    v = np.zeros((1, 1), np.float32)
    got = OpenVinoStep(entry, out / entry["file"]).run(x, {"v": v})
    spike, v_next, v_trace = NeuronSpec().reference(torch.from_numpy(x), torch.from_numpy(v))
    assert_bitwise_equal(got["v_trace"], v_trace.numpy(), "v_trace")
    assert got["v_trace"].view(np.uint32)[1, 0, 0] == 0x7FC00000


def test_nan_never_fires_and_reset_restarts(neuron_dir):
    out, entry = neuron_dir
    step = OpenVinoStep(entry, out / entry["file"])
    x = np.array([[[np.nan, 0.6, -np.inf, np.inf]]] * 3, np.float32)
    v = np.zeros((1, 4), np.float32)
    first, again = step.run(x, {"v": v}), step.run(x, {"v": v})
    assert_bitwise_equal(first["spike"][:, 0], np.array([[0, 0, 0, 1], [0, 1, 0, 1], [0, 0, 0, 1]], np.float32))
    assert np.isnan(first["v_next"][0, 0])
    for key in first:
        assert_bitwise_equal(again[key], first[key], f"after reset_state: {key}")


@pytest.fixture(scope="module")
def network_dir(tmp_path_factory):
    """A network of neuron layers only (OpenVINO refuses the exact layers' float64 sums)."""
    out = tmp_path_factory.mktemp("openvino_network")
    torch.manual_seed(0)
    net = SpikingSequential(LIFLayer(6, beta=torch.linspace(0, 1, 6)), AdaptiveLIFLayer(6, rho=0.9, b=0.3),
                            LeakyIntegratorLayer(6, beta=0.8))
    return out, export_network(net, (6,), out, formats=["torchscript", "openvino"]).manifest


def test_network_of_neuron_layers(network_dir):
    out, manifest = network_dir
    report = verify_dir(out, families=["openvino"], cases=["random_unit", "special_values", "long"],
                        progress=False)
    assert report.comparisons and all(c.ok for c in report.comparisons), report.mismatches
    entry = next(a for a in manifest["artifacts"] if a["name"] == "openvino_step")
    assert [s["input"] for s in entry["state"]] == ["state.0.v", "state.1.v", "state.1.a", "state.2.v"]


@pytest.mark.parametrize(("build", "error", "match"), [
    (lambda out: export(NeuronSpec(dtype="float64"), out, formats=["openvino"]), ValueError, "float32"),
    (lambda out: export_network(SpikingSequential(ExactLinear(4, 6), LIFLayer(6)), (4,), out, formats=["openvino"]),
     TypeError, "ExactLinear"),
])
def test_refuses_float64(tmp_path, build, error, match):
    with pytest.raises(error, match=match):
        build(tmp_path)
    assert not (tmp_path / "manifest.json").exists()


@pytest.mark.parametrize(("models", "runs"), [("neuron_dir", 5), ("network_dir", 4)])
def test_cpp_runner_on_golden_vectors(request, models, runs):
    """lif_openvino_runner (the OpenVINO C++ API, the wheel's OpenVINOConfig.cmake) on the golden vectors
    of the neuron and of a network (four states), driven by the manifest."""
    runner = cpp_build_dir() / "lif_openvino_runner"
    if not runner.exists():
        pytest.skip(f"{runner} not built (scripts/build_cpp.sh, with openvino installed)")
    out, _ = request.getfixturevalue(models)
    done = subprocess.run([str(runner), str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"OK: {runs} runs, 0 mismatching" in done.stdout
