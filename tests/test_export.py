"""Export: artifacts on disk, manifest, golden vectors, memory, opsets, atomic writes."""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from lif_export import LIFCell, LIFNeuron, LIFSequence
from lif_export.backends import Context, EagerSequence
from lif_export.backends.onnxruntime import OrtArtifact
from lif_export.backends.torchscript import TorchScriptArtifact, TorchScriptNeuron
from lif_export.cases import golden_cases
from lif_export.cli import main as cli
from lif_export.conformance.verify import build_backends, verify_dir
from lif_export.export import NeuronSpec, export, spec_from_module, vectors
from lif_export.export.formats import onnx as onnx_format
from lif_export.export.formats.torchscript import load as load_torchscript
from lif_export.export.manifest import EMBEDDED_KEY, ManifestError, load_manifest, sha256_file, validate
from lif_export.export.model import NeuronModel
from lif_export.reference import reference_sequence
from tests.conftest import assert_bitwise_equal

ARTIFACTS = ["lif_step.onnx", "lif_sequence.onnx", "lif_step.pt", "lif_sequence.pt", "lif_neuron.pt"]
GOLDEN = [c.name for c in golden_cases(NeuronModel(NeuronSpec()).signature())]


def test_export_writes_every_artifact_manifest_and_vectors(exported):
    manifest = load_manifest(exported)
    assert [a["file"] for a in manifest["artifacts"]] == ARTIFACTS
    for entry in manifest["artifacts"]:
        assert sha256_file(exported / entry["file"]) == entry["sha256"]
        assert [t["name"] for t in entry["inputs"]] == ["x", "v"]
        assert entry["state"] == [{"input": "v", "output": "v_next", "trace": "v_trace", "initial_value": 0.0}]
        assert entry["outputs"][0]["name"] == "spike" and entry["outputs"][1]["name"] == "v_next"
    assert set(manifest["generator"]) >= {"lif_export", "torch", "onnx", "onnxruntime"}
    assert {v["case"] for v in manifest["vectors"]} == set(GOLDEN)
    for case in manifest["vectors"]:
        folder = exported / "vectors" / case["case"]
        for stem in ["input_0", "input_1", "output_0", "output_1", "output_2"]:
            assert (folder / f"{stem}.pb").is_file()
        for name in ["x", "v", "spike", "v_next", "v_trace"]:
            assert (folder / f"{name}.npy").is_file()
        listed = {f["file"]: f["sha256"] for f in case["files"]}
        assert set(listed) == {f"{case['dir']}/{p.name}" for p in folder.iterdir()}
        assert all(sha256_file(exported / file) == digest for file, digest in listed.items())
    assert {p.name for p in exported.iterdir()} == {*ARTIFACTS, "manifest.json", "vectors", ".lif_export"}
    assert not list((exported / ".lif_export" / "staging").iterdir()), "staging left behind"


def test_every_onnx_file_passes_the_full_checker_and_loads(exported):
    for name in ["lif_step.onnx", "lif_sequence.onnx"]:
        model = onnx.load(exported / name)
        onnx.checker.check_model(model, full_check=True)
        ort.InferenceSession(str(exported / name), providers=["CPUExecutionProvider"])
        embedded = json.loads({p.key: p.value for p in model.metadata_props}[EMBEDDED_KEY])
        entry = next(a for a in load_manifest(exported)["artifacts"] if a["file"] == name)
        assert embedded == {k: v for k, v in entry.items() if k != "sha256"}


def test_every_torchscript_file_loads_in_a_process_that_imports_only_torch(exported):
    code = (
        "import sys, torch\n"
        "for path in sys.argv[1:]:\n"
        "    extra = {'lif_export_manifest.json': ''}\n"
        "    m = torch.jit.load(path, _extra_files=extra)\n"
        "    assert extra['lif_export_manifest.json'].startswith(b'{')\n"
        "    x = torch.full((2, 3), 0.6)\n"
        "    if path.endswith('lif_sequence.pt'):\n"
        "        s, v, tr = m.forward_trace(x.expand(4, 2, 3), torch.zeros(2, 3))\n"
        "    elif path.endswith('lif_neuron.pt'):\n"
        "        m(x); s = m(x); m.step(x, torch.zeros(2, 3))\n"
        "    else:\n"
        "        s, v = m(x, torch.zeros(2, 3))\n"
        "assert 'lif_export' not in sys.modules\n"
        "print('ok')\n"
    )
    paths = [str(exported / n) for n in ARTIFACTS if n.endswith(".pt")]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True, env=env,
                            cwd=str(exported))
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_golden_vectors_match_the_independent_numpy_reference(exported):
    spec = NeuronSpec.from_json(load_manifest(exported)["neuron"])
    p = spec.numpy_params()
    for case in GOLDEN:
        ins, outs = vectors.read_case(exported / "vectors" / case)
        spike, v_next, trace = reference_sequence(ins["x"], ins["v"], p["beta"], p["threshold"], p["v_reset"],
                                                  p["reset"])
        assert_bitwise_equal(outs["spike"], spike, f"{case} spike")
        assert_bitwise_equal(outs["v_trace"], trace, f"{case} v_trace")
        assert_bitwise_equal(outs["v_next"], v_next, f"{case} v_next")
    low = vectors.read_case(exported / "vectors" / "constant_low")[1]["spike"]
    high = vectors.read_case(exported / "vectors" / "constant_high")[1]["spike"]
    assert low.sum() == 0 and high.sum() > 0


def test_every_artifact_from_disk_reproduces_the_golden_vectors(exported):
    cases = [f"golden:{c}" for c in GOLDEN]
    report = verify_dir(exported, cases=cases, progress=False)
    assert report.ok, [c.first_difference for c in report.mismatches]
    backends = {c.backend for c in report.comparisons}
    assert {"eager/sequence", "onnxruntime/step/opt=all/threads=2", "torchscript/neuron-forward/plain",
            "torchscript/sequence/plain", "onnxruntime/sequence-chunked/opt=all/threads=1"} <= backends


def exported_backends(models_dir):
    ctx = Context(models_dir, load_manifest(models_dir))
    return build_backends(ctx, ["torchscript", "onnxruntime"])


def test_exported_graphs_have_memory(exported):
    """0.3 per step is sub-threshold alone; only accumulation (0.3, 0.57, 0.813, 1.0317) fires, at step 3."""
    x = np.full((8, 1, 2), 0.3, dtype=np.float32)
    v0 = np.zeros((1, 2), dtype=np.float32)
    expected = EagerSequence(NeuronSpec()).run(x, {"v": v0})
    assert expected["spike"][:, 0, 0].tolist() == [0, 0, 0, 1, 0, 0, 0, 1]
    for backend in exported_backends(exported):
        got = backend.run(x, {"v": v0})
        assert got["spike"][:, 0, 0].tolist() == [0, 0, 0, 1, 0, 0, 0, 1], backend.name
        assert_bitwise_equal(got["v_trace"], expected["v_trace"], backend.name)


def test_exporting_the_stateful_neuron_lifts_its_state(tmp_path):
    neuron = LIFNeuron(threshold=0.8, beta=0.7, reset="subtract")
    neuron(torch.ones(3))  # hidden state exists; it must not be baked in
    manifest = export(neuron, tmp_path).manifest
    assert manifest["neuron"]["reset"] == "subtract"
    session = ort.InferenceSession(str(tmp_path / "lif_step.onnx"))
    assert [i.name for i in session.get_inputs()] == ["x", "v"]
    assert not any(t.name == "potential" for t in onnx.load(tmp_path / "lif_step.onnx").graph.initializer)


@pytest.mark.parametrize("module", [nn.Linear(3, 3), nn.Sequential(LIFCell())])
def test_modules_whose_state_cannot_be_lifted_are_refused(module, tmp_path):
    with pytest.raises(TypeError, match="cannot export"):
        export(module, tmp_path)
    assert not list(tmp_path.iterdir())


def test_refusal_names_hidden_buffers(tmp_path):
    class Hidden(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mem", torch.zeros(3))

    with pytest.raises(TypeError, match=r"buffers \['mem'\] would be baked in.*no memory"):
        export(Hidden(), tmp_path)


def test_sequence_graph_same_bits_for_any_length_and_chunking(exported):
    ctx = Context(exported, load_manifest(exported))
    seq = OrtArtifact(ctx, "onnx_sequence", "all", 1, chunked=False)
    chunked = OrtArtifact(ctx, "onnx_sequence", "all", 1, chunked=True)
    step = OrtArtifact(ctx, "onnx_step", "all", 1)
    rng = np.random.default_rng(3)
    for steps in (0, 1, 7, 1000):
        x = rng.normal(0.35, 0.6, size=(steps, 3, 5)).astype(np.float32)
        v0 = rng.normal(0, 0.5, size=(3, 5)).astype(np.float32)
        want = EagerSequence(NeuronSpec()).run(x, {"v": v0})
        for backend in (seq, chunked, step):
            got = backend.run(x, {"v": v0})
            for field in ("spike", "v_next", "v_trace"):
                assert_bitwise_equal(got[field], want[field], f"T={steps} {backend.name} {field}")


@pytest.mark.parametrize("opset", range(onnx_format.MIN_OPSET, onnx_format.newest_runnable_opset() + 1))
def test_every_supported_opset_exports_and_runs(opset):
    spec = NeuronSpec(reset="subtract", beta=[0.5, 0.9, 1.0], threshold=1.0)
    x = np.random.default_rng(opset).normal(0.4, 0.6, size=(20, 2, 3)).astype(np.float32)
    v0 = np.zeros((2, 3), np.float32)
    want = EagerSequence(spec).run(x, {"v": v0})
    for build in (onnx_format.step_graph, onnx_format.sequence_graph):
        model = build(spec, opset)
        onnx_format.check(model)
        assert model.opset_import[0].version == opset
    session = ort.InferenceSession(onnx_format.sequence_graph(spec, opset).SerializeToString())
    spike, v_next, trace = session.run(None, {"x": x, "v": v0})
    assert_bitwise_equal(spike, want["spike"])
    assert_bitwise_equal(trace, want["v_trace"])


def test_float64_per_neuron_fixed_shape_export_verifies(tmp_path):
    spec = NeuronSpec(threshold=[[0.5, 1.0], [1.5, 2.0]], beta=0.8, v_reset=-0.5, reset="zero",
                      dtype="float64", feature_shape=(2, 2))
    manifest = export(spec, tmp_path).manifest
    assert manifest["artifacts"][0]["inputs"][0]["shape"] == ["batch", 2, 2]
    assert manifest["artifacts"][1]["inputs"][0]["shape"] == ["time", "batch", 2, 2]
    assert manifest["artifacts"][0]["inputs"][0]["dtype"] == "float64"
    report = verify_dir(tmp_path, progress=False)
    assert report.ok, [c.first_difference for c in report.mismatches][:3]


def test_export_from_a_trained_state_dict(tmp_path, capsys):
    model = nn.Sequential(nn.Linear(4, 6))
    model.lif = LIFSequence(beta=torch.linspace(0.5, 0.95, 6), threshold=torch.full((6,), 0.7),
                            learn_beta=True, learn_threshold=True)
    with torch.no_grad():
        model.lif.beta[0] = 1.3  # drifted out of range in training: forward clamps it, so must export
    torch.save(model.state_dict(), tmp_path / "trained.pt")
    out = tmp_path / "models"
    args = ["export", "--state-dict", str(tmp_path / "trained.pt"), "--prefix", "lif.", "--reset", "subtract",
            "--out", str(out), "-q"]
    assert cli(args) == 2  # out of range: refused unless the learned values are to be clamped, as forward does
    assert "beta must satisfy 0 <= beta <= 1, got [1.2999999523162842]" in capsys.readouterr().err
    assert not out.exists()
    assert cli([*args, "--clamp-learned"]) == 0
    neuron = load_manifest(out)["neuron"]
    assert neuron["feature_shape"] == [6] and neuron["reset"] == "subtract"
    assert neuron["beta"][0] == 1.0 and neuron["beta"][1] == pytest.approx(0.59, abs=1e-6)
    assert verify_dir(out, progress=False).ok
    spec = spec_from_module(model.lif)
    assert spec.beta[0] == 1.0


def test_state_dict_without_lif_keys_is_a_clear_error(tmp_path, capsys):
    torch.save(nn.Linear(2, 2).state_dict(), tmp_path / "sd.pt")
    assert cli(["export", "--state-dict", str(tmp_path / "sd.pt"), "--out", str(tmp_path / "m")]) == 2
    assert "pass --prefix" in capsys.readouterr().err


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--beta", "1.5"], "beta must satisfy 0 <= beta <= 1, got 1.5"),
        (["--threshold", "-1"], "threshold must be finite and > 0, got -1.0"),
        (["--opset", "12"], "opset must be an integer from 17 to"),
        (["--features", "4,x"], "feature shape must be comma-separated"),
    ],
)
def test_bad_flags_leave_existing_models_intact(tmp_path, capsys, args, message):
    export(out_dir=tmp_path)
    before = snapshot(tmp_path)
    assert cli(["export", "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_unwritable_directory_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli(["export", "--out", str(blocker / "models")]) == 2
    assert "is not writable" in capsys.readouterr().err


def test_failure_mid_export_leaves_the_previous_set(tmp_path, monkeypatch):
    export(out_dir=tmp_path)
    before = snapshot(tmp_path)

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(vectors, "write_case", explode)
    with pytest.raises(KeyboardInterrupt):
        export(NeuronSpec(beta=0.5), out_dir=tmp_path)
    assert snapshot(tmp_path) == before
    assert not list((tmp_path / ".lif_export" / "staging").iterdir())


def test_rerun_replaces_the_set_cleanly(tmp_path):
    export(out_dir=tmp_path)
    (tmp_path / "vectors" / "random_unit" / "mine.npy").write_bytes(b"the user's")
    result = export(NeuronSpec(beta=0.5, reset="none"), out_dir=tmp_path)
    assert result.manifest["neuron"]["beta"] == 0.5
    # a file no export wrote is left where it was, and the export says so
    assert (tmp_path / "vectors" / "random_unit" / "mine.npy").read_bytes() == b"the user's"
    assert result.kept == ["kept vectors/random_unit/mine.npy: not written by lif-export"]
    assert verify_dir(tmp_path, progress=False).ok
    export(out_dir=tmp_path, formats=["onnx"])  # the first set is discarded now: everything but the user's file
    assert (tmp_path / "vectors" / "random_unit" / "mine.npy").read_bytes() == b"the user's"
    assert len(list((tmp_path / ".lif_export" / "sets").iterdir())) == 2  # the current and the previous one
    assert not (tmp_path / "lif_step.pt").exists()  # the torchscript links went with their set


def test_manifest_validation_errors():
    with pytest.raises(ManifestError, match="manifest_version must be 1"):
        validate({"manifest_version": 2})
    with pytest.raises(ManifestError, match="no manifest.json"):
        load_manifest(os.devnull)


def test_torchscript_artifacts_embed_their_manifest_entry(exported):
    module, entry = load_torchscript(exported / "lif_neuron.pt")
    assert entry["kind"] == "stateful_neuron" and entry["method"] == "step"
    assert hasattr(module, "step") and hasattr(module, "reset_state")


def test_backend_variants_load_frozen_and_optimized(exported):
    x = np.random.default_rng(0).normal(0.4, 0.5, (30, 2, 4)).astype(np.float32)
    v0 = np.zeros((2, 4), np.float32)
    want = EagerSequence(NeuronSpec()).run(x, {"v": v0})
    ctx = Context(exported, load_manifest(exported))
    for backend in [TorchScriptArtifact(ctx, "torchscript_step", "optimized"),
                    TorchScriptArtifact(ctx, "torchscript_sequence", "optimized", chunked=True),
                    TorchScriptNeuron(exported / "lif_neuron.pt")]:
        got = backend.run(x, {"v": v0})
        assert_bitwise_equal(got["v_trace"], want["v_trace"], backend.name)


def test_torchscript_artifacts_are_byte_reproducible(tmp_path):
    """Same parameters, same bytes, whatever the process's hash seed (which orders TorchScript's
    constants) and random serialization id; and the rewritten archive still loads and runs."""
    code = ("import sys; from lif_export.export import NeuronSpec, export; "
            "export(NeuronSpec(beta=0.7), sys.argv[1], formats=['torchscript'])")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    runs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / seed)], env={**env, "PYTHONHASHSEED": seed},
                             stderr=subprocess.PIPE, text=True) for seed in ("1", "2")]
    assert all(run.wait(timeout=300) == 0 for run in runs), [run.stderr.read()[-2000:] for run in runs]
    first, second = (load_manifest(tmp_path / seed)["artifacts"] for seed in ("1", "2"))
    assert [a["sha256"] for a in first] == [a["sha256"] for a in second]
    module, entry = load_torchscript(tmp_path / "1" / "lif_step.pt")
    spike, v_next = module(torch.full((2, 3), 0.6), torch.full((2, 3), 0.6))
    assert entry["name"] == "torchscript_step" and spike.tolist() == [[1.0] * 3] * 2  # 0.7 * 0.6 + 0.6 > 1
    assert_bitwise_equal(v_next, torch.zeros(2, 3))
