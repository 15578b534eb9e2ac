"""The C++ runners (libtorch and ONNX Runtime) build here and pass the golden vectors bit for bit."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lif_export.export import NeuronSpec, export

pytestmark = pytest.mark.cpp
ROOT = Path(__file__).resolve().parents[1]
RUNNERS = ["lif_ort_runner", "lif_torch_runner"]


def _missing_tools() -> list[str]:
    return [tool for tool in ("cmake", "c++", "npm", "tar") if shutil.which(tool) is None]


@pytest.fixture(scope="session")
def runners() -> dict[str, Path]:
    missing = _missing_tools()
    if missing:
        pytest.skip(f"C++ toolchain incomplete: {', '.join(missing)} not on PATH")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([str(ROOT / "scripts" / "build_cpp.sh")], capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"C++ build failed:\n{result.stderr[-4000:]}"
    build = Path(result.stdout.strip().splitlines()[-1])
    return {name: build / name for name in RUNNERS}


def run(runner: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(runner), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name, runs", [("lif_ort_runner", 2 * 5), ("lif_torch_runner", 3 * 5)])
def test_runner_passes_every_golden_vector(runners, exported, name, runs):
    result = run(runners[name], str(exported))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK: {runs} runs, 0 mismatching" in result.stdout
    assert "near_threshold" in result.stdout and "special_values" in result.stdout


@pytest.mark.parametrize("name", RUNNERS)
def test_runner_passes_float64_per_neuron_subtract(runners, tmp_path, name):
    spec = NeuronSpec(beta=[0.5, 0.9, 0.99, 1.0], threshold=[0.5, 1.0, 1.5, 2.0], reset="subtract", dtype="float64")
    export(spec, tmp_path)
    for chunk in ("1", "1000"):
        result = run(runners[name], str(tmp_path), "--chunk", chunk)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 mismatching" in result.stdout


@pytest.mark.parametrize("name", RUNNERS)
def test_corrupted_expected_output_fails(runners, tmp_path, name):
    export(out_dir=tmp_path)
    path = tmp_path / "vectors" / "near_threshold" / "v_trace.npy"
    trace = np.load(path)
    trace[7, 1, 2] = np.nextafter(trace[7, 1, 2], np.inf)  # one ulp, one element
    np.save(path, trace)
    result = run(runners[name], str(tmp_path), "--case", "near_threshold")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "MISMATCH" in result.stdout and "first difference: v_" in result.stdout
    assert "step 7" in result.stdout


@pytest.mark.parametrize("name", RUNNERS)
def test_bad_arguments_and_manifests_exit_2(runners, exported, tmp_path, name):
    runner = runners[name]
    result = run(runner)
    assert result.returncode == 2 and "MODELS_DIR is required" in result.stderr
    result = run(runner, str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "cannot read the manifest" in result.stderr
    result = run(runner, str(exported), "--chunk", "0")
    assert result.returncode == 2 and "--chunk must be a positive integer" in result.stderr
    result = run(runner, str(exported), "--case", "missing")
    assert result.returncode == 2 and "no golden-vector case named 'missing'" in result.stderr

    copy = tmp_path / "models"
    shutil.copytree(exported, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["manifest_version"] = 99
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = run(runner, str(copy))
    assert result.returncode == 2 and "manifest_version 99 is unknown" in result.stderr

    manifest["manifest_version"] = 1
    for artifact in manifest["artifacts"]:
        for tensor in artifact["inputs"]:
            tensor["shape"][-1] = 16  # the vectors have 8 neurons
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = run(runner, str(copy))
    assert result.returncode == 2 and "shape mismatch: 'x' is [4,8]" in result.stderr


@pytest.mark.parametrize("name", RUNNERS)
def test_help(runners, name):
    result = run(runners[name], "--help")
    assert result.returncode == 0 and "usage:" in result.stdout


@pytest.mark.parametrize("name, runs", [("lif_ort_runner", 2 * 4), ("lif_torch_runner", 3 * 4)])
def test_runner_drives_a_whole_network_from_the_manifest(runners, tmp_path, name, runs):
    from lif_export.network.export import export_network
    from tests.test_network import all_models_network

    export_network(all_models_network(), (8,), tmp_path)
    result = run(runners[name], str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK: {runs} runs, 0 mismatching" in result.stdout
