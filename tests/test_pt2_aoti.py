"""torch.export (``pt2``) and AOTInductor (``aoti``) artifacts: bit-identical to eager PyTorch on every
case, loadable by torch alone, compiled without floating-point contraction (and caught by ``verify``
when compiled with it), cached between runs, and driven from C++ by ``lif_aoti_runner``.

AOTInductor compiles take tens of seconds each, so this module compiles four packages (cached in
``~/.cache/lif_export/aoti/`` across runs): the step and the sequence of the default neuron (float32),
the step of a network with every layer type and neuron model (float64), and the neuron's step again
with contraction. ``lif-export verify --full`` compiles the sequences of every model of its matrix.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from lif_export.bench import aoti_bench
from lif_export.bench.paths import BenchContext
from lif_export.conformance.verify import model_networks, verify_dir
from lif_export.export import NeuronSpec, export, export_network
from lif_export.export.formats import aoti as aoti_format
from lif_export.export.formats import pt2 as pt2_format
from lif_export.export.manifest import find_artifact, load_manifest
from lif_export.export.model import NeuronModel
from lif_export.network import ExactLinear, LeakyIntegratorLayer, LIFLayer, SpikingSequential
from tests.conftest import assert_bitwise_equal

ROOT = Path(__file__).resolve().parents[1]
#: The input cases the networks run (all of them run in ``verify``): NaN, infinities, signed zeros,
#: subnormals and the largest values; a -0.0 state; batch 1.
NETWORK_CASES = ["special_values", "zeros", "random_batch1"]
CONTRACT = "cpp.enable_floating_point_contract_flag"


def _missing_compiler() -> str | None:
    try:
        aoti_format.toolchain()
    except RuntimeError as err:
        return str(err)
    return None


NO_COMPILER = _missing_compiler()
#: The aoti format where it can be compiled (everything of pt2 is tested either way).
AOTI = [] if NO_COMPILER else ["aoti"]
needs_compiler = pytest.mark.skipif(NO_COMPILER is not None, reason=f"no AOTInductor here: {NO_COMPILER}")


def every_model_network() -> SpikingSequential:
    """One network with every layer type and every neuron model (and reset) of ``model_networks()``:
    the convolutional front end, then each model's layer in turn, then a leaky readout."""
    nets = model_networks()
    conv, _ = nets.pop("conv")
    front = [getattr(layer, "module", layer) for layer in conv.layers][:-2]  # conv, LIF, pool, flatten
    torch.manual_seed(0)
    return SpikingSequential(*front, ExactLinear(27, 8), *(net.layers[1] for net, _ in nets.values()),
                             ExactLinear(8, 3), LeakyIntegratorLayer(3))


def assert_verified(folder: Path, families: list[str], cases: list[str] | None = None) -> None:
    report = verify_dir(folder, families=families, cases=cases, progress=False)
    assert report.ok, [(c.backend, c.case, c.first_difference) for c in report.mismatches] + report.errors
    ran = {c.backend.split("/")[0] for c in report.comparisons}
    assert set(families) <= ran, ran


@pytest.fixture(scope="module")
def neuron32(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("neuron32")
    export(NeuronSpec(), out, formats=["pt2", *AOTI])
    return out


@pytest.fixture(scope="module")
def network64(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("network64")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aoti_format, "KINDS", ("step",))  # one compile; verify --full compiles network sequences
        export_network(every_model_network(), (1, 6, 6), out, dtype="float64",
                       formats=["torchscript", "pt2", *AOTI])
    return out


@pytest.fixture(scope="module")
def contracted(tmp_path_factory) -> Path:
    """The default neuron's step compiled with contraction (``-ffp-contract=fast``: GCC 12 does not
    contract C++ with ``on``)."""
    if NO_COMPILER:
        pytest.skip(f"no AOTInductor here: {NO_COMPILER}")
    out = tmp_path_factory.mktemp("contracted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(aoti_format.INDUCTOR_CONFIGS, CONTRACT, "fast")
        patch.setattr(aoti_format, "KINDS", ("step",))  # the step is enough to show it (one compile)
        export(NeuronSpec(), out, formats=["aoti"])
    return out


def test_manifest_lists_the_state_names_of_the_other_formats(neuron32, network64):
    neuron = load_manifest(neuron32)
    names = {a["name"]: ([t["name"] for t in a["inputs"]], [t["name"] for t in a["outputs"]])
             for a in neuron["artifacts"]}
    expected = {"pt2_step": (["x", "v"], ["spike", "v_next"]),
                "pt2_sequence": (["x", "v"], ["spike", "v_next", "v_trace"])}
    if AOTI:
        expected["aoti_step"] = expected["pt2_step"]
        expected["aoti_sequence"] = expected["pt2_sequence"]
    assert names == expected
    assert find_artifact(neuron, "pt2_sequence")["inputs"][0]["shape"] == ["time", "batch", "neurons"]

    network = load_manifest(network64)
    for kind, formats in (("step", ("pt2", *AOTI)), ("sequence", ("pt2",))):
        scripted = find_artifact(network, f"torchscript_{kind}")
        for fmt in formats:
            entry = find_artifact(network, f"{fmt}_{kind}")
            assert (entry["inputs"], entry["outputs"], entry["state"]) == (
                scripted["inputs"], scripted["outputs"], scripted["state"])
            assert entry["calling_convention"] == "flat"
    states = every_model_network().state_names
    assert [t["name"] for t in find_artifact(network, "pt2_step")["inputs"]] == ["x", *states]
    program, embedded = pt2_format.load(network64 / "network_step.pt2")
    assert len(program.graph_signature.user_inputs) == 1 + len(states)
    assert len(program.graph_signature.user_outputs) == 1 + len(states)
    assert embedded["name"] == "pt2_step" and embedded["inputs"][1]["name"] == states[0]


TORCH_ONLY = textwrap.dedent("""
    import sys
    import torch

    folder, inputs, outputs = sys.argv[1:]
    results = []
    for stem, args in torch.load(inputs):
        module = torch.export.load(f"{folder}/{stem}.pt2").module()
        results.append([t.clone() for t in module(*args)])
    assert not [m for m in sys.modules if m.startswith("lif_export")], "lif_export was imported"
    torch.save(results, outputs)
""")


def test_programs_load_in_a_process_that_imports_only_torch(neuron32, tmp_path):
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(6, 1, 5, generator=gen) * 2).contiguous()  # batch 1 and 5 neurons: not the traced sizes
    v0 = torch.randn(1, 5, generator=gen)
    torch.save([("lif_step", [x[0], v0]), ("lif_sequence", [x, v0]), ("lif_sequence", [x[:0], v0])],
               tmp_path / "in.pt")
    result = subprocess.run([sys.executable, "-c", TORCH_ONLY, str(neuron32), str(tmp_path / "in.pt"),
                             str(tmp_path / "out.pt")], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    step, sequence, no_steps = torch.load(tmp_path / "out.pt")
    spike, v_next, v_trace = NeuronSpec().reference(x, v0)
    for name, got, want in zip(("spike", "v_next", "v_trace"), sequence, (spike, v_next, v_trace), strict=True):
        assert_bitwise_equal(got, want, f"sequence {name}")
    assert_bitwise_equal(step[0], spike[0], "step spike")
    assert_bitwise_equal(step[1], v_trace[0], "step v_next")
    assert no_steps[0].shape == (0, 1, 5) and no_steps[2].shape == (0, 1, 5)
    assert_bitwise_equal(no_steps[1], v0, "T = 0 returns v0")


def test_neuron_float32_pt2_and_aoti_match_eager_on_every_case(neuron32):
    assert_verified(neuron32, ["pt2", *AOTI])


def test_neuron_float64_per_neuron_pt2_matches_eager(tmp_path):
    spec = NeuronSpec(beta=[0.5, 0.9, 0.99, 1.0], threshold=[0.5, 1.0, 1.5, 2.0], v_reset=-0.25, reset="subtract",
                      dtype="float64")
    export(spec, tmp_path, formats=["pt2"])
    assert_verified(tmp_path, ["pt2"], ["random_unit", "near_threshold", "special_values", "zeros", "subnormal"])


def test_network_float64_with_every_layer_type_pt2_and_aoti_match_eager(network64):
    assert_verified(network64, ["pt2", *AOTI], NETWORK_CASES)


def test_network_float32_pt2_matches_eager(tmp_path):
    net, features = model_networks()["adaptive/subtract"]
    export_network(net, features, tmp_path, dtype="float32", formats=["torchscript", "pt2"])
    assert_verified(tmp_path, ["pt2"], NETWORK_CASES)


def compile_commands(package: Path) -> str:
    """The compiler commands inductor records at the end of each generated kernel source."""
    with zipfile.ZipFile(package) as archive:
        return "".join(archive.read(n).decode() for n in archive.namelist() if n.endswith(".kernel.cpp"))


@needs_compiler
def test_compiled_sequence_runs_any_time_and_batch(neuron32):
    """The compiled scan, at sizes other than the traced ones, T = 0 included (the cond's branch)."""
    run_sequence, _, _ = aoti_format.load(neuron32 / "lif_sequence_aoti.pt2")
    gen = torch.Generator().manual_seed(2)
    for steps, batch, neurons in ((0, 3, 5), (1, 1, 4), (300, 5, 9)):
        x = torch.randn(steps, batch, neurons, generator=gen) * 2
        v0 = torch.randn(batch, neurons, generator=gen)
        got = run_sequence(x, v0)
        for name, g, want in zip(("spike", "v_next", "v_trace"), got, NeuronSpec().reference(x, v0), strict=True):
            assert_bitwise_equal(g, want, f"T={steps} batch={batch} {name}")


@needs_compiler
def test_sum_of_two_nans_is_eagers_nan(neuron32):
    """beta * v + x with v = -NaN (x86's default NaN) and x = +NaN: eager keeps x's NaN, and so does the
    compiled step (its add is rewritten, aoti.DECOMPOSITIONS); the other lanes check the signs of zeros."""
    step, _, _ = aoti_format.load(neuron32 / "lif_step_aoti.pt2")
    bits = torch.tensor([[0xFFC00000, 0x7FC00000, 0x80000000, 0x80000000, 0x7FC00001]], dtype=torch.int64)
    v = bits.to(torch.int32).view(torch.float32)
    x = torch.tensor([[float("nan"), float("-inf"), -0.0, 0.0, 2.0]])
    spike, v_next = step(x, v)
    want_spike, want_v = NeuronSpec().reference(x[None], v)[:2]
    assert_bitwise_equal(v_next, want_v, "v_next")
    assert_bitwise_equal(spike, want_spike[0], "spike")


def test_contraction_is_caught_by_verify(neuron32, contracted):
    flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    if " fma" not in flags:
        pytest.skip("this CPU has no FMA instructions: contraction cannot change a bit here")
    for folder, flag in ((contracted, "fast"), (neuron32, "off")):
        package = folder / "lif_step_aoti.pt2"
        assert aoti_format.load(package)[2][CONTRACT] == flag
        assert f"-ffp-contract={flag}" in compile_commands(package)
    if "-mfma" not in compile_commands(contracted / "lif_step_aoti.pt2"):
        pytest.skip("inductor compiles without -mfma for this CPU's vector ISA: no FMA instruction is emitted")
    probes = ["near_threshold", "near_threshold_1ulp"]
    fused = verify_dir(contracted, families=["aoti"], cases=probes, progress=False)
    assert fused.mismatches and all(c.backend.startswith("aoti/") for c in fused.mismatches)
    assert {c.case for c in fused.mismatches} >= {"near_threshold", "golden:near_threshold"}
    assert_verified(neuron32, ["aoti"], probes)


@needs_compiler
def test_a_cached_package_is_reused_without_compiling(neuron32, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("compiled again although the package is cached")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", refuse)
    export(NeuronSpec(), tmp_path, formats=["aoti"])
    assert (find_artifact(load_manifest(tmp_path), "aoti_step")["sha256"]
            == find_artifact(load_manifest(neuron32), "aoti_step")["sha256"])
    assert list(aoti_format.cache_dir().glob("*.pt2"))


def test_the_package_cache_evicts_the_least_recently_used_beyond_its_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = aoti_format.cache_dir()
    folder.mkdir(parents=True)
    packages = [folder / f"{i:064x}.pt2" for i in range(5)]
    for age, path in enumerate(packages):  # packages[0] is the newest
        path.write_bytes(b"\0" * 2**20)
        os.utime(path, (1e9 - age * 100, 1e9 - age * 100))
    others = [folder / "notes.txt", folder / "not-a-key.pt2"]
    for path in others:
        path.write_bytes(b"\0" * 2**21)
    monkeypatch.setenv("LIF_EXPORT_AOTI_CACHE_MB", "3.5")
    removed = aoti_format.evict_packages(keep=packages[4])  # the oldest, just used: kept
    assert sorted(removed) == sorted(packages[2:4])
    assert all(p.exists() for p in [*packages[:2], packages[4], *others])
    monkeypatch.setenv("LIF_EXPORT_AOTI_CACHE_MB", "0")
    assert sorted(aoti_format.evict_packages(keep=packages[4])) == sorted(packages[:2])
    assert packages[4].exists() and all(p.exists() for p in others)
    for bad in ("lots", "-1", "inf"):
        monkeypatch.setenv("LIF_EXPORT_AOTI_CACHE_MB", bad)
        with pytest.raises(ValueError, match=rf"\$LIF_EXPORT_AOTI_CACHE_MB must be a size in MiB .* got '{bad}'"):
            aoti_format.cache_limit_bytes()


def test_untraceable_layer_is_refused_before_anything_is_written(tmp_path):
    class DataDependent(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x if bool(x.sum() > 0) else -x

    net = SpikingSequential(ExactLinear(3, 4), DataDependent(), LIFLayer(4))
    with pytest.raises(TypeError, match=r"cannot export the step of layers \[.*'DataDependent'.*\] with torch.export"):
        export_network(net, (3,), tmp_path, formats=["pt2"])
    assert not (tmp_path / "manifest.json").exists()


def test_step_program_is_traced_once_per_model():
    model = NeuronModel(NeuronSpec(feature_shape=(4,)))
    assert pt2_format.export_program(model, "step") is pt2_format.export_program(model, "step")


@needs_compiler
def test_bench_paths_step_the_exported_neuron_bit_for_bit(neuron32):
    gen = torch.Generator().manual_seed(3)
    x = (torch.rand(30, 1, 16, generator=gen) * 0.6).contiguous()
    ctx = BenchContext(steps=30, shape=(1, 16), x=x, models=neuron32, threads=1, rounds=1)
    spikes, _, _ = NeuronSpec().reference(x, torch.zeros(1, 16))
    for path in aoti_bench.w2_paths(ctx, neuron32):
        assert_bitwise_equal(path.run(), spikes, path.name)


# -- C++ ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def aoti_runner() -> Path:
    if NO_COMPILER:
        pytest.skip(f"no AOTInductor here: {NO_COMPILER}")
    missing = [tool for tool in ("cmake", "c++") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"C++ toolchain incomplete: {', '.join(missing)} not on PATH")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([str(ROOT / "scripts" / "build_cpp.sh")], capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"C++ build failed:\n{result.stderr[-4000:]}"
    runner = Path(result.stdout.strip().splitlines()[-1]) / "lif_aoti_runner"
    if not runner.exists():
        pytest.skip(f"{runner} was not built: cpp/CMakeLists.txt has no LIF_BUILD_AOTI_RUNNER target")
    return runner


def run(runner: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(runner), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.cpp
def test_cpp_runner_passes_every_golden_vector(aoti_runner, neuron32, network64):
    for folder, runs in ((neuron32, 2 * 5), (network64, 4)):
        result = run(aoti_runner, str(folder))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"OK: {runs} runs, 0 mismatching" in result.stdout
    result = run(aoti_runner, str(neuron32), "--bench", "200", "--shape", "1,128")
    assert result.returncode == 0 and "bench aoti_step [1,128] 200 steps:" in result.stdout, result.stderr


@pytest.mark.cpp
def test_cpp_runner_refuses_a_contracted_package_and_bad_manifests(aoti_runner, contracted, network64, tmp_path):
    result = run(aoti_runner, str(contracted))
    assert result.returncode == 2 and "was not compiled with cpp.enable_floating_point_contract_flag" in result.stderr
    copy = tmp_path / "models"
    shutil.copytree(network64, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["artifacts"] = [a for a in manifest["artifacts"] if a["format"] != "aoti"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = run(aoti_runner, str(copy))
    assert result.returncode == 2 and "the manifest lists no aoti artifact" in result.stderr
