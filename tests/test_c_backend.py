"""The C format: a C99 library per model, bit-identical to eager PyTorch on the host (gcc and clang at
every optimisation level), on aarch64 (qemu-aarch64) and on a bare-metal Cortex-M4F (qemu-system-arm),
with fused multiply-adds impossible and PyTorch's NaN bits; the ``c`` verify family; its speed."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lif_export.backends import Context
from lif_export.backends import c as c_backend
from lif_export.backends.c import build as build_backend
from lif_export.backends.c import driver
from lif_export.conformance.verify import matrix_specs, model_networks, verify_dir
from lif_export.export import NeuronSpec, export
from lif_export.export.formats import FORMATS, ExportOptions
from lif_export.export.formats import c as c_format
from lif_export.export.formats.c_harness import (
    AARCH64,
    CORTEX_M,
    CORTEX_M4F,
    HarnessLibrary,
    HarnessResult,
    Target,
    cached_build,
    catalogue,
    cortex_m_footprint,
    host_target,
)
from lif_export.export.manifest import load_manifest, sha256_file
from lif_export.export.model import NetworkModel, NeuronModel
from lif_export.export.pipeline import export_model
from lif_export.fast.ccompile import compiler, cpu_info
from lif_export.network import (
    ExactConv2d,
    ExactLinear,
    LeakyIntegratorLayer,
    LIFLayer,
    SpikingSequential,
    SynapticLIFLayer,
)
from lif_export.network import lif as lif_module
from tests.conftest import assert_bitwise_equal

#: The neuron of the cross-target tests: per-neuron parameters, so the feature shape is fixed.
NEURON = {"feature_shape": (4,), "beta": [0.1, 0.5, 0.9, 1.0], "threshold": [0.5, 1.0, 1.5, 2.0], "v_reset": -0.25}
#: Test-only macros of the generated code: no pragma; plain + - * (no NaN handling, no rounding by shape).
NO_PRAGMA, NAIVE = "LIF_EXPORT_NO_CONTRACT_PRAGMA", "LIF_EXPORT_NAIVE_ARITHMETIC"
needs_cc = pytest.mark.skipif(compiler() is None, reason="no C compiler on PATH")
needs_fma = pytest.mark.skipif("fma" not in cpu_info()["features"],
                               reason="this CPU has no fused multiply-add: contraction cannot change a result here")


def run_target(target: Target, libraries: list[HarnessLibrary], defines: tuple[str, ...] = ()) -> HarnessResult:
    """The harness on ``target``; skips when the target's tools are not installed."""
    missing = target.missing()
    if missing:
        pytest.skip(f"{target.name}: {missing}")
    return target.run(libraries, defines)


@pytest.fixture(scope="session")
def c_exports(tmp_path_factory) -> dict[str, Path]:
    """The neuron and a small network (ExactLinear, SynapticLIF, ExactLinear, LeakyIntegrator) in both
    dtypes, as C libraries named lif32, lif64, net32, net64 (the network with TorchScript, the reference
    of verify's input cases)."""
    root = tmp_path_factory.mktemp("c")
    folders = {}
    for dtype in ("float32", "float64"):
        bits = dtype[-2:]
        folders[f"lif{bits}"] = root / f"lif{bits}"
        export_model(NeuronModel(NeuronSpec(**NEURON, dtype=dtype)), folders[f"lif{bits}"], ["c"],
                     ExportOptions(c_name=f"lif{bits}"))
        net, features = model_networks()["synaptic/zero"]
        folders[f"net{bits}"] = root / f"net{bits}"
        export_model(NetworkModel(net, features, dtype), folders[f"net{bits}"], ["c", "torchscript"],
                     ExportOptions(c_name=f"net{bits}"))
    return folders


@pytest.fixture(scope="session")
def libraries(c_exports) -> list[HarnessLibrary]:
    return [HarnessLibrary.read(folder) for folder in c_exports.values()]


# -- the files and the manifest --------------------------------------------------------------------

def test_library_files_and_manifest_entry(c_exports):
    folder = c_exports["lif32"]
    manifest = load_manifest(folder)
    (entry,) = manifest["artifacts"]
    assert {k: entry[k] for k in ("name", "file", "format", "kind", "method", "calling_convention")} == {
        "name": "c_library", "file": "lif32.c", "format": "c", "kind": "step", "method": "lif32_step",
        "calling_convention": "flat"}
    assert entry["companions"] == [{"file": "lif32.h", "sha256": sha256_file(folder / "lif32.h")}]
    assert entry["sha256"] == sha256_file(folder / "lif32.c")
    assert [t["name"] for t in entry["inputs"]] == ["x", "v"] and entry["outputs"][0]["shape"] == ["batch", 4]
    embedded = c_format.embedded_entry(folder / "lif32.c")
    assert embedded == {k: v for k, v in entry.items() if k != "sha256"}
    header = (folder / "lif32.h").read_text()
    for declaration in ["#define LIF32_X_SIZE 4", "#define LIF32_OUT_SIZE 4", "#define LIF32_V_SIZE 4",
                        "float v[4];", "} lif32_state;", "void lif32_reset(lif32_state *state);",
                        "void lif32_step(lif32_state *state, const float *x, float *out);",
                        "void lif32_run(lif32_state *state, const float *x, float *out, size_t steps);"]:
        assert declaration in header
    source = (folder / "lif32.c").read_text()
    assert "malloc" not in source and "#include <math.h>" not in source
    assert not re.search(r"^static (?!const|inline|void)", source, re.M), "a mutable global"
    assert "double" not in source.split("lif_export_manifest.json")[1], "double arithmetic in a float32 library"
    net_header = (c_exports["net64"] / "net64.h").read_text()
    assert "double state_1_i[8];" in net_header and "#define NET64_STATE_3_V_SIZE 3" in net_header


def test_default_names_and_refusals(tmp_path):
    assert c_format.artifacts(NeuronModel(NeuronSpec(feature_shape=(3,))), ExportOptions())[0].entry["file"] == "lif.c"
    net = SpikingSequential(ExactLinear(3, 2), LIFLayer(2))
    assert c_format.artifacts(NetworkModel(net, (3,)), ExportOptions())[0].entry["file"] == "net.c"
    assert "c" in FORMATS
    for bad in ("1lif", "my-net", "int", "", "x" * 32, 7):
        with pytest.raises(ValueError, match="c_name"):
            c_format.library(NeuronModel(NeuronSpec(feature_shape=(3,))), bad)
    with pytest.raises(ValueError, match=r"fixed feature shape.*feature_shape=\(16,\).*--features 16"):
        export(NeuronSpec(), tmp_path / "dynamic", formats=["c"])
    assert not (tmp_path / "dynamic" / "manifest.json").exists()
    with pytest.raises(TypeError, match="cannot export Linear to C"):
        c_format.library(NetworkModel(SpikingSequential(nn.Linear(3, 2), LIFLayer(2)), (3,)), "net")
    exported = export(NeuronSpec(feature_shape=(16,)), tmp_path / "fixed", formats=["c"])
    assert [a["file"] for a in exported.manifest["artifacts"]] == ["lif.c"]


def test_exact_linear_is_event_driven_after_a_spiking_layer(c_exports):
    """The first ExactLinear quantizes its real-valued input; the second, after the spiking layer, only
    adds the weight columns of the neurons that fired (no multiply): the golden vectors (host tests)
    show both give PyTorch's bits."""
    source = (c_exports["net32"] / "net32.c").read_text()
    first = source.split("static void net32_l0(")[1].split("\n}\n")[0]
    second = source.split("static void net32_l2(")[1].split("\n}\n")[0]
    assert "net32_quantize(x[j])" in first and "acc[o] += q * net32_l0_w" in first
    assert "if (x[j] != 0.0f)" in second and "acc[o] += net32_l2_w[j * 3 + o];" in second
    assert "quantize" not in second and "q *" not in second


# -- the host ----------------------------------------------------------------------------------------

@needs_cc
@pytest.mark.parametrize("name", ["lif32", "lif64", "net32", "net64"])
def test_verify_runs_the_c_family_bit_for_bit(c_exports, name):
    cases = None if name.startswith("lif") else ["random_unit", "special_values", "huge", "subnormal", "zeros",
                                                  "golden:constant_high", "golden:special_values"]
    report = verify_dir(c_exports[name], families=["c"], cases=cases, progress=False)
    assert report.ok, [(c.backend, c.case, c.first_difference) for c in report.mismatches] + report.errors
    names = {c.backend for c in report.comparisons}
    assert {n.split("/")[1] for n in names if n.startswith("c/")} == {"step", "run-chunked"}
    assert any("-O3 -march=native" in n for n in names) and any("portable NaN" in n for n in names)


@pytest.mark.parametrize("cc", ["gcc", "clang"])
@pytest.mark.parametrize("flags", [("-O0",), ("-O2",), ("-O3",), ("-O3", "-march=native")], ids=" ".join)
def test_host_compilers_in_gnu_mode(libraries, cc, flags):
    """GNU mode, no contraction flag: GCC contracts across statements by default (-ffp-contract=fast)."""
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed (scripts/install_system_deps.sh)")
    result = run_target(host_target(cc, flags), libraries)
    assert result.passed, result.output
    assert result.output.count("ok   ") == sum(len(lib.cases) for lib in libraries)


@needs_fma
def test_the_contraction_protection_matters(libraries):
    """Without both protections (the pragma, and the code shape that rounds every product before it is
    added) GCC fuses beta*v + x into one FMA on this CPU and the near-threshold golden case lands on
    the other side of the threshold. Either protection alone restores every bit, except that Clang
    under -ffp-contract=fast ignores its pragma: there the code's shape is what holds."""
    gcc = host_target("gcc", ("-O2", "-march=native"))
    naive = run_target(gcc, libraries, (NAIVE, NO_PRAGMA)).output
    assert "FAIL lif32 near_threshold" in naive and "first difference: step sample" in naive
    assert "FAIL lif64 near_threshold" in naive
    for defines in ((NAIVE,), (NO_PRAGMA,)):
        result = run_target(gcc, libraries, defines)
        assert result.passed, result.output
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed")
    clang = host_target("clang", ("-O2", "-march=native", "-ffp-contract=fast"))
    assert "FAIL net32" in run_target(clang, libraries, (NAIVE,)).output
    for defines in ((NO_PRAGMA,), ()):
        result = run_target(clang, libraries, defines)
        assert result.passed, result.output


@pytest.mark.parametrize("target", [AARCH64, CORTEX_M], ids=["aarch64", "cortex-m4f"])
def test_arm_targets_fuse_without_the_protection(libraries, target):
    """GCC for ARM contracts too (fmadd; the Cortex-M4F's vfma.f32): naive C mismatches there."""
    result = run_target(target, libraries[:1], (NAIVE, NO_PRAGMA))
    assert "FAIL lif32 near_threshold" in result.output, result.output


@needs_cc
def test_unsafe_flags_are_refused(c_exports):
    for flag, message in (("-ffast-math", "must not be compiled with -ffast-math"),
                          ("-Ofast", "must not be compiled with -ffast-math"),
                          ("-ffinite-math-only", "must not be compiled with -ffinite-math-only")):
        result = subprocess.run([compiler(), flag, "-c", "lif32.c", "-o", "/dev/null"], cwd=c_exports["lif32"],
                                capture_output=True, text=True)
        assert result.returncode != 0 and message in result.stderr


def nan_payloads(rng: np.random.Generator, x: np.ndarray, fraction: float) -> np.ndarray:
    """``x`` with NaNs of random payloads and signs (quiet and signalling) put in."""
    unsigned, mantissa = (np.uint32, 23) if x.dtype == np.float32 else (np.uint64, 52)
    where = rng.random(x.shape) < fraction
    exponent = (unsigned(1) << unsigned(x.dtype.itemsize * 8 - 1)) - (unsigned(1) << unsigned(mantissa))
    payload = rng.integers(1, 1 << mantissa, int(where.sum()), dtype=np.uint64).astype(unsigned)
    sign = rng.integers(0, 2, int(where.sum()), dtype=np.uint64).astype(unsigned) << unsigned(x.dtype.itemsize * 8 - 1)
    out = x.copy()
    out[where] = (exponent | payload | sign).view(x.dtype)
    return out


def with_specials(rng: np.random.Generator, x: np.ndarray, fraction: float = 0.08) -> np.ndarray:
    """``x`` with infinities, signed zeros and the largest float put in (in place)."""
    where = rng.random(x.shape) < fraction
    x[where] = rng.choice(np.array([np.inf, -np.inf, 0.0, -0.0, np.finfo(x.dtype).max], x.dtype), int(where.sum()))
    return x


@pytest.fixture(scope="session")
def nan_libraries() -> list[HarnessLibrary]:
    """NaNs of distinct payloads and signs (signalling ones too), infinities (invalid operations that make
    x86's default NaN) and signed zeros through the neuron, the neuron models' arithmetic and MaxPool2d;
    through ExactLinear/ExactConv2d one payload at a time (with several different NaNs in one sum,
    which one PyTorch's BLAS returns depends on its kernel: see c.py), with inputs halfway between
    grid points (torch.round's ties to even). Golden cases computed in memory."""
    rng = np.random.default_rng(7)
    libraries = []
    for dtype, np_dtype in (("float32", np.float32), ("float64", np.float64)):
        bits = dtype[-2:]
        model = NeuronModel(NeuronSpec(feature_shape=(6,), beta=[0.0, 0.5, 1.0, 0.0, 0.9, 1.0], reset="none",
                                       dtype=dtype))
        x = nan_payloads(rng, with_specials(rng, rng.normal(0, 2, (120, 4, 6)).astype(np_dtype)), 0.1)
        infinite = with_specials(rng, rng.normal(0, 2, (40, 16, 6)).astype(np_dtype), 0.4)  # NaNs absorb: none here
        cases = {"nans": (x, zero_states(model, 4)), "infinities": (infinite, zero_states(model, 16))}
        libraries.append(HarnessLibrary.of_model(model, f"nanlif{bits}", cases))
        torch.manual_seed(0)
        synaptic = SynapticLIFLayer(18, alpha=0.0, beta=torch.linspace(0, 1, 18), reset="subtract")
        readout = LeakyIntegratorLayer(18, beta=0.0)
        pool = NetworkModel(SpikingSequential(nn.MaxPool2d(2), nn.Flatten(), synaptic, readout), (2, 6, 6), dtype)
        x = nan_payloads(rng, with_specials(rng, rng.normal(0, 2, (60, 3, 2, 6, 6)).astype(np_dtype)), 0.1)
        infinite = with_specials(rng, rng.normal(0, 2, (30, 4, 2, 6, 6)).astype(np_dtype), 0.4)
        cases = {"nans": (x, zero_states(pool, 3)), "infinities": (infinite, zero_states(pool, 4))}
        libraries.append(HarnessLibrary.of_model(pool, f"pool{bits}", cases))
        torch.manual_seed(0)
        exact = NetworkModel(SpikingSequential(ExactConv2d(2, 3, 3, padding=1), nn.Flatten(), ExactLinear(108, 5),
                                               LeakyIntegratorLayer(5, beta=0.5)), (2, 6, 6), dtype)
        x = with_specials(rng, rng.normal(0, 2, (60, 3, 2, 6, 6)).astype(np_dtype))
        ties = rng.random(x.shape) < 0.3  # halfway between grid points (round half to even), inside and beyond +-256
        x[ties] = (rng.integers(-2**21, 2**21, int(ties.sum())) + 0.5) / 4096
        x[rng.random(x.shape) < 0.05] = nan_payloads(rng, np.zeros(1, np_dtype), 1.0)[0]
        libraries.append(HarnessLibrary.of_model(exact, f"exact{bits}", {"nans": (x, zero_states(exact, 3))}))
    return libraries


def test_nan_bits_follow_pytorch(nan_libraries):
    """See ``nan_libraries``; both NaN forms on the host: x86's (the hardware does most) and the explicit
    one of other targets (which the aarch64 and Cortex-M4F tests run natively)."""
    for defines in ((), ("LIF_EXPORT_PORTABLE_NAN",)):
        result = run_target(host_target(compiler() or "cc", ("-O2",)), nan_libraries, defines)
        assert result.passed, result.output


def zero_states(model: NeuronModel | NetworkModel, batch: int) -> dict[str, np.ndarray]:
    return {s.input: np.zeros(model.state_shape(s, batch), model.numpy_dtype) for s in model.states}


@needs_cc
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sums_beyond_2_53_round_as_pytorch(dtype):
    """ExactLinear(2**17, 1) with the grid's extreme inputs and weights: the exact sum is odd and above
    2**53, so PyTorch's float64 bias addition rounds it before the cast; the C library rounds the
    integer the same way (round53), and a sum one below stays exact."""
    layer = ExactLinear(2**17, 1)
    with torch.no_grad():
        layer.weight.fill_(16.0)
        layer.weight[0, 0] = 16.0 - 2.0**-12  # odd, times the odd input below: an odd sum
        layer.bias.fill_(16.0)
    model = NetworkModel(SpikingSequential(layer), (2**17,), dtype)
    harness = HarnessLibrary.of_model(model, "big", {})
    assert b"big_round53(acc[o])" in harness.files["big.c"]
    x = np.full((2, 1, 2**17), 256.0, model.numpy_dtype)
    x[:, 0, 0] = 256.0 - 2.0**-12
    x[1, 0, 1] = -256.0
    expected = model.reference(x, {})["out"]
    files = {**harness.files, "driver.c": driver(harness).encode()}
    so = cached_build([compiler(), "-O2", "-shared", "-fPIC"], files, ["big.c", "driver.c"], "big.so")
    loaded = ctypes.CDLL(str(so))
    out, state, trace = np.empty((2, 1), model.numpy_dtype), np.zeros(1, model.numpy_dtype), np.empty(0)
    loaded.lif_export_trace(*(ctypes.c_void_p(a.ctypes.data) for a in (state, np.ascontiguousarray(x[:, 0]), out,
                                                                         trace)), ctypes.c_size_t(2))
    assert_bitwise_equal(out, expected.reshape(2, 1), "ExactLinear(2**17, 1)")


@needs_cc
def test_every_model_network_and_matrix_neuron():
    """The conformance matrix's neurons (fixed shapes), every neuron model's network and every reset
    timing, in both dtypes: one host program, each with golden cases computed in memory."""
    libraries = []
    for k, spec in enumerate(matrix_specs()):
        fixed = spec if isinstance(spec.beta, list) else NeuronSpec(**{**spec.__dict__, "feature_shape": (3,)})
        model = NeuronModel(fixed)
        libraries.append(HarnessLibrary.of_model(model, f"spec{k}",
                                                 catalogue(model, ["near_threshold", "special_values"])))
    networks = dict(model_networks())
    for timing in getattr(lif_module, "RESET_TIMINGS", ())[1:]:
        for reset in ("zero", "subtract", "none"):
            try:
                layer = LIFLayer(8, beta=0.8, reset=reset, reset_timing=timing)
            except ValueError:  # not every reset has every timing
                continue
            torch.manual_seed(0)
            networks[f"timing_{timing}_{reset}"] = (
                SpikingSequential(ExactLinear(6, 8), layer, ExactLinear(8, 3), LeakyIntegratorLayer(3)), (6,))
    torch.manual_seed(0)  # ExactLinear on the last dim of [2, 6] samples: two rows each
    networks["rows"] = (SpikingSequential(ExactLinear(6, 4), LIFLayer((2, 4)), ExactLinear(4, 3),
                                          LeakyIntegratorLayer((2, 3))), (2, 6))
    for k, (net, features) in enumerate(networks.values()):
        for dtype in ("float32", "float64"):
            model = NetworkModel(net, features, dtype)
            libraries.append(HarnessLibrary.of_model(model, f"net{k}_{dtype[-2:]}",
                                                     catalogue(model, ["special_values", "ramp"])))
    result = run_target(host_target(compiler() or "cc", ("-O2",)), libraries)
    assert result.passed, result.output
    assert result.output.count("ok   ") == sum(len(lib.cases) for lib in libraries)


# -- the cross targets -------------------------------------------------------------------------------

def test_aarch64_under_qemu(libraries, nan_libraries):
    result = run_target(AARCH64, [*libraries, *nan_libraries])
    assert result.passed, result.output


def test_cortex_m4f_under_qemu(libraries, nan_libraries):
    """Bare metal, FPU with single-precision FMA, newlib only for memset/memcpy; results by semihosting."""
    result = run_target(CORTEX_M, [*libraries, *nan_libraries])
    assert result.passed, result.output
    assert result.output.count("ok   ") == sum(len(lib.cases) for lib in [*libraries, *nan_libraries])


def test_float32_libraries_do_no_double_arithmetic_on_the_cortex_m(c_exports, tmp_path):
    """A Cortex-M4F has no double-precision FPU: a float32 library must not call the soft-float double
    routines (a float64 one does)."""
    if CORTEX_M.missing():
        pytest.skip(CORTEX_M.missing())
    symbols = {}
    for name in ("net32", "net64"):
        subprocess.run([CORTEX_M.compiler, *CORTEX_M4F, "-O2", "-std=c99", "-Wall", "-Wextra", "-Wpedantic",
                        "-Wdouble-promotion", "-Werror", "-c", str(c_exports[name] / f"{name}.c"),
                        "-o", str(tmp_path / f"{name}.o")], check=True)
        nm = subprocess.run(["arm-none-eabi-nm", "-u", str(tmp_path / f"{name}.o")], capture_output=True, text=True)
        symbols[name] = nm.stdout
    assert "__aeabi_d" not in symbols["net32"] and "__aeabi_dadd" in symbols["net64"]


def test_digits_sized_network_fits_a_cortex_m4():
    """Flash and RAM of the digits example's network (ExactLinear 64->128, LIF, 128->96, LIF, 96->64,
    SynapticLIF, 64->10, LeakyIntegrator) as a float32 C library for the Cortex-M4F."""
    if CORTEX_M.missing() or shutil.which("arm-none-eabi-size") is None:
        pytest.skip("arm-none-eabi-gcc is not installed (scripts/install_system_deps.sh)")
    from lif_export.examples.digits import build_network

    torch.manual_seed(0)
    size = cortex_m_footprint(HarnessLibrary.of_model(NetworkModel(build_network(), (64,)), "digits", {}))
    print(f"digits network on a Cortex-M4F: {size}")
    assert size["bss"] == 0 and size["data"] <= 8  # the state is the caller's; data: the barrier's zero
    assert size["state"] == (128 + 96 + 64 + 64 + 10) * 4
    assert size["flash"] < 96 * 1024 and size["stack"] < 4096


def test_trained_digits_network_predicts_identically_on_the_cortex_m4f():
    """The digits example's network, trained, as a float32 C library on the emulated Cortex-M4F: its readout
    on held-out test images is eager PyTorch's bit for bit, so its predictions are identical."""
    if CORTEX_M.missing():
        pytest.skip(CORTEX_M.missing())
    from lif_export.examples.digits import encode, load_data, predictions_from_output, train

    data = load_data(0)
    net, _ = train(data, epochs=2, steps=12, seed=0, progress=False)
    images = 16  # the firmware holds the inputs, the readouts and every state's trace as const arrays
    x = encode(data.x_test[:images], 12).numpy()
    model = NetworkModel(net, (64,))
    states = {s.input: np.zeros(model.state_shape(s, images), np.float32) for s in model.states}
    lib = HarnessLibrary.of_model(model, "digits", {"test_images": (x, states)})
    result = run_target(CORTEX_M, [lib])
    assert result.passed and "ok   " in result.output, result.output
    predicted = predictions_from_output(model.reference(x, states)["out"])
    assert (predicted == data.y_test[:images].numpy()).mean() > 0.5  # it learned (2 epochs), and C agrees


# -- speed -------------------------------------------------------------------------------------------

@needs_cc
def test_c_bench_rows_check_the_bits():
    from lif_export.bench.c_bench import c_rows

    step, run = c_rows(steps=50, rounds=1, step_features=16, run_features=64)
    assert step["workload"] == "C step [1, 16]" and step["ns_per_step"] > 0
    assert run["workload"] == "C run [50, 1, 64]" and run["result"] != "MISMATCH"


@needs_cc
def test_builds_are_cached_by_sources_and_flags(c_exports, tmp_path):
    """The same sources and command give the cached output; a changed source or flag builds anew."""
    files = HarnessLibrary.read(c_exports["lif32"], cases=()).files
    changed = {**files, "lif32.c": files["lif32.c"] + b"/* changed */\n"}
    first = cached_build([compiler(), "-O2", "-c"], files, ["lif32.c"], "lif32.o")
    assert cached_build([compiler(), "-O2", "-c"], files, ["lif32.c"], "lif32.o") == first
    assert cached_build([compiler(), "-O2", "-c"], changed, ["lif32.c"], "lif32.o") != first
    assert cached_build([compiler(), "-O1", "-c"], files, ["lif32.c"], "lif32.o") != first
    _, loaded = build_backend(c_exports["lif32"], compiler(), ("-O2",))
    assert build_backend(c_exports["lif32"], compiler(), ("-O2",))[1]._name == loaded._name


def test_the_family_says_once_why_it_yields_nothing_without_a_compiler(c_exports, monkeypatch):
    monkeypatch.setattr(c_backend, "compiler", lambda: None)
    c_backend._say_no_compiler.cache_clear()
    ctx = Context(c_exports["lif32"], load_manifest(c_exports["lif32"]))
    with pytest.warns(UserWarning, match="no C compiler on PATH"):
        assert list(c_backend.variants(ctx)) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(c_backend.variants(ctx)) == []  # said once
