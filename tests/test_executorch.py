"""The ExecuTorch format and backend: .pte step programs (CPU kernels, XNNPACK) against eager PyTorch."""

import subprocess

import numpy as np
import pytest
import torch

from lif_export.backends.cpp_runners import cpp_build_dir
from lif_export.backends.executorch import ExecutorchStep
from lif_export.cases import CASES
from lif_export.conformance.verify import model_networks, verify_dir
from lif_export.export import export, export_network
from lif_export.export.formats.base import model_io
from lif_export.export.formats.executorch import MAX_BATCH, MAX_FEATURES, cpu_program, export_step
from lif_export.export.model import NetworkModel, NeuronModel
from lif_export.export.spec import NeuronSpec
from lif_export.network import LIFLayer, SpikingSequential
from tests.conftest import assert_bitwise_equal

pytest.importorskip("executorch.exir", reason="the executorch format needs `pip install 'lif_export[executorch]'`")


@pytest.fixture(scope="module")
def neuron_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("executorch_neuron")
    return out, export(out_dir=out, formats=["executorch"]).manifest


def _entry(manifest: dict, name: str) -> dict:
    return next(a for a in manifest["artifacts"] if a["name"] == name)


def test_writes_cpu_and_xnnpack_programs(neuron_dir):
    out, manifest = neuron_dir
    for name, file in (("executorch_step", "lif_step.pte"), ("executorch_xnnpack_step", "lif_step_xnnpack.pte")):
        entry = _entry(manifest, name)
        assert entry["file"] == file and (out / file).is_file()
        assert entry["format"] == "executorch" and entry["kind"] == "step" and entry["calling_convention"] == "flat"
        assert [t["name"] for t in entry["inputs"]] == ["x", "v"]
        assert [t["name"] for t in entry["outputs"]] == ["spike", "v_next"]
        assert entry["dim_max"] == {"batch": MAX_BATCH, "neurons": MAX_FEATURES}


def test_cpu_program_by_hand(neuron_dir):
    """x = 0.6 from v = 0 with beta 0.9, theta 1: u = 0.6, then 0.9*0.6 + 0.6 = 1.14 > 1 fires and resets."""
    out, manifest = neuron_dir
    step = ExecutorchStep(_entry(manifest, "executorch_step"), out / "lif_step.pte")
    x = np.full((3, 2, 5), 0.6, np.float32)
    got = step.run(x, {"v": np.zeros((2, 5), np.float32)})
    u1 = np.float32(np.float32(0.9) * np.float32(0.6)) + np.float32(0.6)
    assert u1 > 1
    assert_bitwise_equal(got["spike"][:, 0, 0], np.array([0, 1, 0], np.float32), "spikes")
    assert_bitwise_equal(got["v_trace"][:, 0, 0], np.array([0.6, 0.0, 0.6], np.float32), "potentials")


def test_verify_cpu_identical_xnnpack_as_recorded(neuron_dir):
    """The program without a delegate equals eager PyTorch on every case; XNNPACK differs exactly where its
    manifest entry says (it flushes subnormals), and verify reports that difference, never hides it."""
    out, manifest = neuron_dir
    report = verify_dir(out, families=["executorch"], progress=False)
    assert not report.errors and not report.checksum_failures
    cpu = [c for c in report.comparisons if c.backend == "executorch/step"]
    xnnpack = [c for c in report.comparisons if c.backend == "executorch/xnnpack_step"]
    assert cpu and all(c.ok for c in cpu), [c.first_difference for c in cpu if not c.ok]
    assert "deviation" not in _entry(manifest, "executorch_step")
    bad = [c for c in xnnpack if not c.ok]
    deviation = _entry(manifest, "executorch_xnnpack_step").get("deviation")
    assert (deviation is None) == (not bad)
    if bad:
        assert deviation == f"case {bad[0].case}: {bad[0].first_difference}"


def test_xnnpack_flushes_subnormals(neuron_dir):
    """A subnormal current into v = 0 is the subnormal u = x in eager PyTorch; the XNNPACK program's
    state is +0.0 where eager's is subnormal, while normal values are the same."""
    out, manifest = neuron_dir
    x = np.array([[[1e-39, 0.5, -1e-40, 1e-45]]], np.float32)
    v = np.zeros((1, 4), np.float32)
    cpu = ExecutorchStep(_entry(manifest, "executorch_step"), out / "lif_step.pte").run(x, {"v": v})
    xnnpack = ExecutorchStep(_entry(manifest, "executorch_xnnpack_step"), out / "lif_step_xnnpack.pte").run(x, {"v": v})
    assert_bitwise_equal(cpu["v_next"], x[0], "the CPU kernels keep subnormals")
    assert xnnpack["v_next"][0, 1] == np.float32(0.5)
    assert np.all(xnnpack["v_next"][0, [0, 2, 3]] == 0) and "subnormal" in _entry(
        manifest, "executorch_xnnpack_step")["deviation"]


@pytest.fixture(scope="module")
def network64_dir(tmp_path_factory):
    """A network with an adaptive layer, exact linear layers and a leaky readout, in float64."""
    out = tmp_path_factory.mktemp("executorch_network64")
    net, features = model_networks()["adaptive/subtract"]
    return out, export_network(net, features, out, dtype="float64", formats=["torchscript", "executorch"]).manifest


def test_network_float64_both_programs_identical(network64_dir):
    """float64 runs on the CPU kernels (XNNPACK has no float64 kernels: nothing is delegated), bit for bit."""
    out, manifest = network64_dir
    report = verify_dir(out, families=["executorch"], cases=["random_unit", "special_values", "subnormal", "zeros"],
                        progress=False)
    assert not report.errors and {c.backend for c in report.comparisons} == {
        "executorch/step", "executorch/xnnpack_step"}
    assert all(c.ok for c in report.comparisons), [(c.backend, c.case, c.first_difference) for c in report.mismatches]
    assert not [a for a in manifest["artifacts"] if "deviation" in a]


def test_network_cpu_identical(tmp_path):
    """A network with exact linear layers (float64 sums) and a leaky readout, on the CPU kernels."""
    net, features = model_networks()["lif/zero"]
    model = NetworkModel(net, features)
    (tmp_path / "net.pte").write_bytes(cpu_program(export_step(model)))
    step = ExecutorchStep({"name": "executorch_step", "method": "forward", **model_io(model, False)},
                          tmp_path / "net.pte")
    for name in ("random_unit", "special_values", "huge"):
        x, states = CASES[name].build(model.signature())
        want, got = model.reference(x, states), step.run(x, states)
        for key in want:
            assert_bitwise_equal(got[key], want[key], f"{name} {key}")


def test_near_threshold_cases(neuron_dir):
    """The cases built to catch a fused multiply-add, on the program without a delegate."""
    out, manifest = neuron_dir
    step = ExecutorchStep(_entry(manifest, "executorch_step"), out / "lif_step.pte")
    model = NeuronModel(NeuronSpec())
    for name in ("near_threshold", "at_threshold"):
        x, states = CASES[name].build(model.signature())
        want = model.reference(x, states)
        got = step.run(x, states)
        for key in want:
            assert_bitwise_equal(got[key], want[key], f"{name} {key}")


def test_unexportable_layer_named(tmp_path):
    class Opaque(torch.nn.Module):
        def forward(self, x):
            return torch.tensor(x.numpy() * 2)  # leaves the graph: torch.export cannot trace it

    with pytest.raises(TypeError, match="Opaque"):
        export_network(SpikingSequential(Opaque(), LIFLayer(4)), (4,), tmp_path, formats=["executorch"])


@pytest.mark.parametrize(("models", "runs"), [("neuron_dir", 2 * 5), ("network64_dir", 2 * 4)])
def test_cpp_runner_on_golden_vectors(request, models, runs):
    """lif_executorch_runner (the Module API against the wheel's libraries) on the golden vectors of the
    neuron and of a float64 network, both programs, driven by the manifest."""
    runner = cpp_build_dir() / "lif_executorch_runner"
    if not runner.exists():
        pytest.skip(f"{runner} not built (scripts/build_cpp.sh, with executorch installed)")
    out, _ = request.getfixturevalue(models)
    done = subprocess.run([str(runner), str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "executorch_step " in done.stdout and "executorch_xnnpack_step " in done.stdout
    assert f"OK: {runs} runs, 0 mismatching" in done.stdout
