"""Conformance: the checker passes conforming backends and catches deviating ones."""

import json

import numpy as np
import onnx
import pytest
from onnx import helper

from lif_export.backends import EagerSequence
from lif_export.backends.numpy_reference import NumpyReference
from lif_export.cases import CASES
from lif_export.cli import main as cli
from lif_export.conformance.compare import compare
from lif_export.conformance.verify import format_table, verify_dir
from lif_export.export import NeuronSpec, export
from lif_export.export.manifest import sha256_file
from lif_export.export.model import NeuronModel

NEAR = [CASES[name] for name in ("at_threshold", "near_threshold_1ulp", "near_threshold")]


def test_quick_verify_passes_every_backend_and_suite(exported):
    report = verify_dir(exported, progress=False)
    assert report.ok, [c.first_difference for c in report.mismatches][:5]
    families = {c.backend.split("/")[0] for c in report.comparisons}
    assert families == {"eager", "numpy", "torchscript", "onnxruntime", "fast"}
    cases = {c.case for c in report.comparisons}
    assert set(CASES) <= cases
    assert sum(c.spikes for c in report.comparisons if c.case == "near_threshold_1ulp") > 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
@pytest.mark.parametrize("arithmetic", ["fused", "reordered"])
def test_near_threshold_suite_catches_fused_or_reordered_arithmetic(arithmetic, reset, dtype):
    """A reference that fuses the multiply-add, or reorders it, must flip spikes here."""
    spec = NeuronSpec(reset=reset, dtype=dtype)
    reference, deviant = EagerSequence(spec), NumpyReference(spec, arithmetic)
    flipped = 0
    for suite in NEAR:
        x, v0 = suite.build(NeuronModel(spec).signature(), full=False)
        result = compare(deviant.name, suite.name, reference.run(x, v0), deviant.run(x, v0))
        assert not result.ok and result.first_difference.startswith("step ")
        flipped += result.spike_mismatches
    assert flipped > 10


def test_checker_reports_the_first_difference_readably():
    spec = NeuronSpec()
    x, v0 = NEAR[1].build(NeuronModel(spec).signature(), full=False)
    result = compare("numpy/fused", "near", EagerSequence(spec).run(x, v0), NumpyReference(spec, "fused").run(x, v0))
    assert "step 1, index" in result.first_difference or result.first_difference.startswith("step ")
    assert "vs reference" in result.first_difference
    table = format_table([result])
    assert "MISMATCH" in table and "numpy/fused" in table


def _rewrite_onnx(folder, file, edit):
    """Edit an exported ONNX graph and re-sign it in the manifest, as a miscompiling exporter would."""
    path = folder / file
    model = onnx.load(path)
    edit(model)
    onnx.save(model, path)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["artifacts"]:
        if entry["file"] == file:
            entry["sha256"] = sha256_file(path)
    manifest_path.write_text(json.dumps(manifest))


def test_verify_catches_a_graph_that_fires_at_equality(tmp_path, capsys):
    export(out_dir=tmp_path)

    def greater_or_equal(model):
        for node in model.graph.node:
            if node.op_type == "Greater":
                node.op_type = "GreaterOrEqual"

    _rewrite_onnx(tmp_path, "lif_step.onnx", greater_or_equal)
    code = cli(["verify", str(tmp_path), "--no-progress", "--backend", "onnxruntime"])
    out = capsys.readouterr().out
    assert code == 1
    assert "MISMATCH  onnxruntime/step" in out and "at_threshold" in out
    assert "onnxruntime/sequence/opt=all/threads=2" in out  # the untouched graph still passes


def test_verify_catches_a_graph_with_different_arithmetic(tmp_path, capsys):
    """(x + beta*v) computed as beta*(v + x/beta): algebraically equal, not bitwise."""
    export(NeuronSpec(reset="none"), out_dir=tmp_path)

    def reorder(model):
        graph = model.graph
        nodes = [n for n in graph.node if list(n.output) not in (["beta_v"], ["u"])]  # u = beta * v + x
        new = [
            helper.make_node("Div", ["x", "beta"], ["x_over_beta"]),
            helper.make_node("Add", ["v", "x_over_beta"], ["v_plus"]),
            helper.make_node("Mul", ["beta", "v_plus"], ["u"]),
        ]
        del graph.node[:]
        graph.node.extend(new + nodes)

    _rewrite_onnx(tmp_path, "lif_step.onnx", reorder)
    assert cli(["verify", str(tmp_path), "--no-progress", "--backend", "onnxruntime", "--summary"]) == 1
    assert "MISMATCH  onnxruntime/step" in capsys.readouterr().out


def test_changed_file_is_reported_and_not_run(tmp_path, capsys):
    export(out_dir=tmp_path)
    with open(tmp_path / "lif_sequence.pt", "ab") as f:
        f.write(b"tampered")
    assert cli(["verify", str(tmp_path), "--no-progress", "--summary"]) == 1
    out = capsys.readouterr().out
    assert "CHECKSUM  lif_sequence.pt: sha256" in out and "not run" in out
    assert "torchscript/sequence/plain" not in out and "torchscript/step/plain" in out


def test_verify_cli_exit_codes(exported, tmp_path, capsys):
    assert cli(["verify", str(exported), "--no-progress", "--case", "random_unit", "--case", "golden:random_unit"]) == 0
    out = capsys.readouterr().out
    assert "OK:" in out and "random_unit" in out and "golden:random_unit" in out
    assert cli(["verify", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    assert cli(["verify", str(exported), "--case", "nope"]) == 2
    assert "case must be one of" in capsys.readouterr().err
    assert cli(["verify", str(exported), "--backend", "tensorflow"]) == 2
    assert "backend must be one of" in capsys.readouterr().err
    (tmp_path / "manifest.json").write_text(json.dumps({"manifest_version": 7}))
    assert cli(["verify", str(tmp_path)]) == 2
    assert "manifest_version must be 1" in capsys.readouterr().err


def test_verify_json_output(exported, tmp_path):
    out = tmp_path / "report.json"
    assert cli(["verify", str(exported), "--no-progress", "--case", "zeros", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["ok"] is True and all(c["spike_mismatches"] == 0 for c in data["comparisons"])


@pytest.mark.slow
def test_full_suite_long_runs_pass(exported):
    report = verify_dir(exported, full=True, cases=["long", "special_values"], progress=False)
    assert report.ok
    assert max(c.steps for c in report.comparisons) == 10_000


def test_suites_cover_the_required_inputs():
    signature = NeuronModel(NeuronSpec()).signature()
    names = set(CASES)
    assert {"random_small", "random_unit", "random_large", "constant_low", "constant_high", "ramp",
            "at_threshold", "near_threshold_1ulp", "huge", "zeros", "subnormal", "special_values",
            "long", "random_batch1", "random_batch64"} <= names
    x, _ = CASES["special_values"].build(signature, False)
    assert np.isnan(x).any() and np.isposinf(x).any() and np.isneginf(x).any()
    x, _ = CASES["subnormal"].build(signature, False)
    assert ((np.abs(x) < np.finfo(np.float32).smallest_normal) & (x != 0)).any()
    assert CASES["long"].full_steps >= 10_000
