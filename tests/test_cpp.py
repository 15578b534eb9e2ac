"""The C++ runners (libtorch and ONNX Runtime) build here and pass the golden vectors bit for bit.

They also refuse hostile inputs -- golden .npy files of the wrong shape, malformed or
truncated .npy files, broken or inconsistent manifests, missing files -- with exit 2
and one line on stderr naming the file and the problem, never a crash or a read out
of bounds. A second build with AddressSanitizer and UBSan (cpp/build-asan) runs the
golden vectors and the hostile inputs (see ASAN_TORCH_CASES) and must stay silent.

The plain and the sanitizer builds compile concurrently (one job each) when both
are needed; each is built once per session and reused across sessions.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lif_export.export import NeuronSpec, export

pytestmark = pytest.mark.cpp
ROOT = Path(__file__).resolve().parents[1]
RUNNERS = ["lif_ort_runner", "lif_torch_runner"]
COMMON_HEADERS = sorted(p.name for p in (ROOT / "cpp" / "common").glob("*.hpp"))
SANITIZER_REPORT = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")
# libtorch and onnxruntime are not built with ASan: their allocations are not ours to
# account for, so leak checking is off; every other ASan and UBSan check is on, and a
# finding aborts the run (UBSan: -fno-sanitize-recover=all).
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:halt_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}


def _missing_tools() -> list[str]:
    return [tool for tool in ("cmake", "c++", "npm", "tar") if shutil.which(tool) is None]


def _has_nlohmann() -> bool:
    return any(Path(d, "nlohmann", "json.hpp").is_file() for d in ("/usr/include", "/usr/local/include"))


# -- builds -------------------------------------------------------------------------------


class _Build:
    """One scripts/build_cpp.sh run, started in the background."""

    def __init__(self, sanitize: bool, jobs: int):
        self.sanitize = sanitize
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "JOBS": str(jobs),
            "LIF_SANITIZE": "ON" if sanitize else "OFF",
        }
        env.pop("BUILD_DIR", None)
        self.log = tempfile.TemporaryFile(mode="w+")
        # The plain build already compiles each header on its own; the sanitizer build need not.
        args = ["-DLIF_CHECK_HEADERS=OFF"] if sanitize else []
        self.proc = subprocess.Popen([str(ROOT / "scripts" / "build_cpp.sh"), *args], stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, env=env, start_new_session=True)
        self.dir: Path | None = None

    def stop(self) -> None:
        """End the build if it is still running (its own process group: the script, cmake, make, compilers)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.communicate()

    def wait(self) -> Path:
        if self.dir is None:
            out, _ = self.proc.communicate()
            self.log.seek(0)
            log = self.log.read()
            kind = "sanitizer" if self.sanitize else "plain"
            assert self.proc.returncode == 0, f"C++ {kind} build failed:\n{log[-6000:]}"
            self.dir = Path(out.strip().splitlines()[-1])
        return self.dir


_BUILDS: dict[bool, _Build] = {}  # sanitize -> its build


def start_cpp_builds(session: pytest.Session) -> None:
    """Start in the background the C++ builds the selected tests need: the plain one, the
    sanitizer one, or both side by side with one compile job each. Nothing if the toolchain
    or nlohmann/json.hpp is missing (the fixtures then skip, or install it, and say why).

    The first fixture that needs a build calls this. The Python tests use one core
    (OMP_NUM_THREADS=1), so conftest.py may call it earlier to build on the other core:
        def pytest_collection_finish(session):
            item = next((i for i in session.items if i.get_closest_marker("cpp")), None)
            if item is not None:
                item.module.start_cpp_builds(session)
    """
    if _missing_tools() or not _has_nlohmann():
        return
    wanted = {s for s, name in ((True, "asan_runners"), (False, "build_dir"))
              if any(name in getattr(item, "fixturenames", ()) for item in session.items)} - set(_BUILDS)
    for sanitize in sorted(wanted):
        _BUILDS[sanitize] = _Build(sanitize, jobs=1 if len(wanted) > 1 else 2)
        session.config.add_cleanup(_BUILDS[sanitize].stop)  # an unused build does not outlive the session


def _build(request: pytest.FixtureRequest, sanitize: bool) -> Path:
    """The plain (sanitize=False) or the sanitizer build folder, built once per session."""
    if sanitize not in _BUILDS:
        missing = _missing_tools()
        if missing:
            pytest.skip(f"C++ toolchain incomplete: {', '.join(missing)} not on PATH")
        if not _has_nlohmann():
            # scripts/bootstrap.sh runs scripts/install_system_deps.sh as root; a venv made otherwise may lack it.
            if os.geteuid() != 0:
                pytest.skip("nlohmann/json.hpp missing: run scripts/install_system_deps.sh as root")
            subprocess.run([str(ROOT / "scripts" / "install_system_deps.sh")], check=True)
        start_cpp_builds(request.session)
        if sanitize not in _BUILDS:  # not among the selected tests' needs as collected
            _BUILDS[sanitize] = _Build(sanitize, jobs=2)
            request.session.config.add_cleanup(_BUILDS[sanitize].stop)
    return _BUILDS[sanitize].wait()


@pytest.fixture(scope="session")
def build_dir(request) -> Path:
    return _build(request, sanitize=False)


@pytest.fixture(scope="session")
def runners(build_dir) -> dict[str, Path]:
    return {name: build_dir / name for name in RUNNERS}


@pytest.fixture(scope="session")
def asan_runners(request) -> dict[str, Path]:
    build = _build(request, sanitize=True)
    paths = {name: build / name for name in RUNNERS}
    for path in paths.values():  # really instrumented: linked against the sanitizer runtimes
        libs = subprocess.run(["ldd", str(path)], capture_output=True, text=True).stdout
        assert "libasan" in libs and "libubsan" in libs, f"{path} is not linked with ASan and UBSan:\n{libs}"
    return paths


def run(runner: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(runner), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


# -- models -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def float64_models(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("float64_models")
    spec = NeuronSpec(beta=[0.5, 0.9, 0.99, 1.0], threshold=[0.5, 1.0, 1.5, 2.0], reset="subtract", dtype="float64")
    export(spec, out)
    return out


_NETWORK_MODELS: list[Path] = []


def _network_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled all-models network, exported once per session."""
    if not _NETWORK_MODELS:
        from lif_export.export import export_network
        from tests.test_network import all_models_network

        out = tmp_path_factory.mktemp("network_models")
        export_network(all_models_network(), (8,), out)
        _NETWORK_MODELS.append(out)
    return _NETWORK_MODELS[0]


@pytest.fixture(scope="session")
def network_models(tmp_path_factory) -> Path:
    return _network_models(tmp_path_factory)


@pytest.fixture(scope="session")
def float_tier_models(tmp_path_factory) -> Path:
    """A network with an ordinary ``nn.Linear``: exported in the float tier."""
    import torch

    from lif_export.export import export_network
    from lif_export.network import LIFLayer, SpikingSequential

    out = tmp_path_factory.mktemp("float_tier_models")
    torch.manual_seed(0)
    export_network(SpikingSequential(torch.nn.Linear(4, 3), LIFLayer(3)), (4,), out)
    return out


# -- the plain build ----------------------------------------------------------------------


@pytest.mark.parametrize("name, runs", [("lif_ort_runner", 2 * 5), ("lif_torch_runner", 3 * 5)])
def test_runner_passes_every_golden_vector(runners, exported, name, runs):
    result = run(runners[name], str(exported))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK: {runs} runs, 0 mismatching" in result.stdout
    assert "near_threshold" in result.stdout and "special_values" in result.stdout


@pytest.mark.parametrize("name", RUNNERS)
def test_runner_passes_float64_per_neuron_subtract(runners, float64_models, name):
    for chunk in ("1", "1000"):
        result = run(runners[name], str(float64_models), "--chunk", chunk)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 mismatching" in result.stdout


@pytest.mark.parametrize("name", RUNNERS)
def test_float_tier_export_is_refused_with_the_way_to_judge_it(runners, float_tier_models, name):
    """The runners compare bit for bit; a float-tier export holds only within tolerances (docs/networks.md)."""
    result = run(runners[name], str(float_tier_models))
    assert result.returncode == 2, result.stdout + result.stderr
    assert 'exactness "float"' in result.stderr and "lif-export verify" in result.stderr, result.stderr


@pytest.mark.parametrize("name", RUNNERS)
def test_bench_sizes_each_state_from_the_manifest(runners, network_models, name):
    """``--shape`` is the input's shape: a network's states ([2, 16], [2, 12], ...) get their own sizes."""
    result = run(runners[name], str(network_models), "--bench", "20", "--shape", "2,8")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^bench \S+_step \[2,8\] 20 steps: [0-9.]+ us/step", result.stdout, re.M), result.stdout


@pytest.mark.parametrize("name", RUNNERS)
def test_corrupted_expected_output_fails(runners, exported, tmp_path, name):
    models = tmp_path / "models"
    shutil.copytree(exported, models)
    path = models / "vectors" / "near_threshold" / "v_trace.npy"
    trace = np.load(path)
    trace[7, 1, 2] = np.nextafter(trace[7, 1, 2], np.inf)  # one ulp, one element
    np.save(path, trace)
    result = run(runners[name], str(models), "--case", "near_threshold")
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
def test_runner_drives_a_whole_network_from_the_manifest(runners, network_models, name, runs):
    result = run(runners[name], str(network_models))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK: {runs} runs, 0 mismatching" in result.stdout


# -- hostile inputs -----------------------------------------------------------------------
# Each case copies a good export, breaks one thing in it (mostly in its first golden
# case), and says what the one line on stderr must contain, for both runners or per runner.


@dataclass(frozen=True)
class Golden:
    """The first golden-vector case of a models folder: its files and their shapes."""

    root: Path
    dir: str  # relative to root, e.g. "vectors/random"
    steps: int
    shapes: dict[str, list[int]]

    @classmethod
    def of(cls, root: Path) -> Golden:
        case = json.loads((root / "manifest.json").read_text())["vectors"][0]
        shapes = {t["name"]: t["shape"] for t in case["inputs"] + case["outputs"]}
        return cls(root, case["dir"], case["steps"], shapes)

    def path(self, tensor: str) -> Path:
        return self.root / self.dir / f"{tensor}.npy"

    def rel(self, tensor: str) -> str:
        return f"{self.dir}/{tensor}.npy"

    def edit(self, tensor: str, change: Callable[[np.ndarray], np.ndarray]) -> None:
        np.save(self.path(tensor), change(np.load(self.path(tensor))))

    def manifest(self, change: Callable[[dict], None]) -> None:
        manifest = json.loads((self.root / "manifest.json").read_text())
        change(manifest)
        (self.root / "manifest.json").write_text(json.dumps(manifest))


def dims(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _npy(header: str, data: bytes = b"") -> bytes:
    """A version-1.0 .npy file with this header dict, padded as numpy pads it."""
    text = header.encode("latin1")
    text += b" " * (-(10 + len(text) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + data


def _shorten(tensor: str, steps: Callable[[int], int]) -> Callable[[Golden], None]:
    return lambda g: g.edit(tensor, lambda a: a[: steps(len(a))])


def _short_everywhere(g: Golden) -> None:
    """spike.npy and its manifest entry both say T/2 steps; x and the case's `steps` say T."""
    g.edit("spike", lambda a: a[: len(a) // 2])
    g.manifest(lambda m: m["vectors"][0]["outputs"][0]["shape"].__setitem__(0, g.steps // 2))


def _other_batch_for_v(g: Golden) -> None:
    """v.npy and its manifest entry say batch B + 1, x says B."""
    shape = [g.shapes["v"][0] + 1, *g.shapes["v"][1:]]
    np.save(g.path("v"), np.zeros(shape, np.float32))
    g.manifest(lambda m: m["vectors"][0]["inputs"][1].__setitem__("shape", shape))


def _each_artifact(change: Callable[[dict], None]) -> Callable[[Golden], None]:
    return lambda g: g.manifest(lambda m: [change(a) for a in m["artifacts"]])


def _write_model(data: bytes | None) -> Callable[[Golden], None]:
    """Replace (None: delete) the step models of both formats."""
    def write(g: Golden) -> None:
        for name in ("lif_step.onnx", "lif_step.pt"):
            if data is None:
                (g.root / name).unlink()
            else:
                (g.root / name).write_bytes(data)
    return write


def _write_manifest(g: Golden) -> None:
    text = (g.root / "manifest.json").read_text()
    (g.root / "manifest.json").write_text(text[: len(text) // 2])


BAD_HEADER = "{'descr': '<f4', 'fortran_order': False, 'shape': (100, 4, }"
HUGE_SHAPE = "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4611686018427387904), }"
GARBAGE = bytes(range(256)) * 12
Expect = Callable[[Golden], list[str]]


def _short_expect(tensor: str, steps: Callable[[int], int]) -> Expect:
    def expect(g: Golden) -> list[str]:
        shape = g.shapes[tensor]
        return ["shape mismatch", f"{g.rel(tensor)} is {dims([steps(shape[0]), *shape[1:]])}", f"says {dims(shape)}"]
    return expect


# name: (models to start from, the change, what stderr must contain: for both runners, or one per runner)
HOSTILE: dict[str, tuple[str, Callable[[Golden], None], Expect | dict[str, Expect]]] = {
    "short_spike": ("neuron", _shorten("spike", lambda t: t // 2), _short_expect("spike", lambda t: t // 2)),
    "short_v_trace": ("neuron", _shorten("v_trace", lambda t: t // 2), _short_expect("v_trace", lambda t: t // 2)),
    "empty_v_trace": ("neuron", _shorten("v_trace", lambda t: 0), _short_expect("v_trace", lambda t: 0)),
    "scalar_x": ("neuron", lambda g: g.edit("x", lambda a: np.float32(0.5)),
                 lambda g: ["shape mismatch", f"{g.rel('x')} is []", f"says {dims(g.shapes['x'])}"]),
    "short_spike_in_manifest_too": ("neuron", _short_everywhere,
                                    lambda g: [f"{g.rel('spike')} is [{g.steps // 2},", f"has {g.steps} steps"]),
    "other_batch_for_v": ("neuron", _other_batch_for_v,
                          lambda g: [f"shape mismatch: 'v' is [{g.shapes['v'][0] + 1},", g.rel("v"),
                                     f"batch={g.shapes['v'][0]}"]),
    "truncated_npy": ("neuron", lambda g: g.path("x").write_bytes(g.path("x").read_bytes()[:-100]),
                      lambda g: [f"{g.rel('x')}: truncated", "data bytes, the file has"]),
    "garbage_npy": ("neuron", lambda g: g.path("x").write_bytes(GARBAGE),
                    lambda g: [f"{g.rel('x')}: not a .npy file"]),
    "empty_npy": ("neuron", lambda g: g.path("x").write_bytes(b""), lambda g: [f"{g.rel('x')}: not a .npy file"]),
    "bad_npy_header": ("neuron", lambda g: g.path("x").write_bytes(_npy(BAD_HEADER, bytes(12800))),
                       lambda g: [f"{g.rel('x')}: malformed .npy header"]),
    "huge_npy_header_length": ("neuron", lambda g: g.path("x").write_bytes(b"\x93NUMPY\x02\x00\xf0\xff\xff\xff{'d"),
                               lambda g: [f"{g.rel('x')}: truncated .npy header"]),
    "huge_npy_shape": ("neuron", lambda g: g.path("x").write_bytes(_npy(HUGE_SHAPE)),
                       lambda g: [f"{g.rel('x')}: malformed .npy header (shape entry too large)"]),
    "int32_npy": ("neuron", lambda g: g.edit("x", lambda a: a.astype(np.int32)),
                  lambda g: [f"{g.rel('x')}: dtype '<i4' is not supported"]),
    "float64_npy": ("neuron", lambda g: g.edit("x", lambda a: a.astype(np.float64)),
                    lambda g: [f"{g.rel('x')}: dtype float64", "says float32"]),
    "big_endian_npy": ("neuron", lambda g: g.edit("x", lambda a: a.astype(">f4")),
                       lambda g: [f"{g.rel('x')}: dtype '>f4' is not supported"]),
    "fortran_order_npy": ("neuron", lambda g: g.edit("x", np.asfortranarray),
                          lambda g: [f"{g.rel('x')}: Fortran-ordered arrays are not supported"]),
    "missing_npy": ("neuron", lambda g: g.path("v_trace").unlink(),
                    lambda g: ["cannot open", f"{g.rel('v_trace')}: No such file or directory"]),
    "manifest_version_1_5": ("neuron", lambda g: g.manifest(lambda m: m.__setitem__("manifest_version", 1.5)),
                             lambda g: ["manifest.json: manifest_version 1.5 is unknown"]),
    "manifest_not_json": ("neuron", _write_manifest,
                          lambda g: ["cannot read the manifest", "manifest.json: parse error"]),
    "manifest_without_vectors": ("neuron", lambda g: g.manifest(lambda m: m.pop("vectors")),
                                 lambda g: ["manifest.json: missing 'vectors'"]),
    "manifest_negative_dim": ("neuron", _each_artifact(lambda a: a["inputs"][0]["shape"].__setitem__(1, -3)),
                              lambda g: ["manifest.json: artifacts[0].inputs[0].shape[1]: "
                                         "expected an integer >= 0, got -3"]),
    "manifest_unknown_state_input": ("neuron", _each_artifact(lambda a: a["state"][0].__setitem__("input", "w")),
                                     lambda g: ["manifest.json: artifacts[0].state[0].input: 'w' is not an input"]),
    "reversed_inputs": ("neuron", _each_artifact(lambda a: a["inputs"].reverse()), {
        "lif_ort_runner": lambda g: ["lif_step.onnx: the graph's inputs are (x, v)", "with inputs (v, x)"],
        "lif_torch_runner": lambda g: ["lif_step.pt: method 'forward' takes (x, v)", "with inputs (v, x)"]}),
    "reversed_network_inputs": ("network", _each_artifact(lambda a: a["inputs"].reverse()), {
        "lif_ort_runner": lambda g: ["network_step.onnx: the graph's inputs are (x, state.", "with inputs (state."],
        "lif_torch_runner": lambda g: ["network_step.pt: method 'step' takes (x, state)", "with inputs (state."]}),
    "reversed_outputs": ("neuron", _each_artifact(lambda a: a["outputs"].reverse()),
                         lambda g: ["does not match the one embedded in the file: "
                                    "outputs (v_next, spike) in the manifest, (spike, v_next) in the file"]),
    "missing_model": ("neuron", _write_model(None), {
        "lif_ort_runner": lambda g: ["cannot open model file", "lif_step.onnx", "no such file"],
        "lif_torch_runner": lambda g: ["cannot open model file", "lif_step.pt", "no such file"]}),
    "garbage_model": ("neuron", _write_model(GARBAGE), {
        "lif_ort_runner": lambda g: ["lif_step.onnx: ONNX Runtime cannot load it"],
        "lif_torch_runner": lambda g: ["lif_step.pt: libtorch cannot load it"]}),
}


class _HostileModels:
    """Each hostile case's broken copy of a good export, made on first use (so that a failing
    network export touches only the network case)."""

    def __init__(self, root: Path, bases: dict[str, Callable[[], Path]]):
        self.root, self.bases, self.made = root, bases, {}

    def __getitem__(self, case: str) -> Golden:
        if case not in self.made:
            base, change, _ = HOSTILE[case]
            shutil.copytree(self.bases[base](), self.root / case)
            golden = Golden.of(self.root / case)
            change(golden)
            self.made[case] = golden
        return self.made[case]


@pytest.fixture(scope="session")
def hostile_models(exported, tmp_path_factory) -> _HostileModels:
    bases = {"neuron": lambda: exported, "network": lambda: _network_models(tmp_path_factory)}
    return _HostileModels(tmp_path_factory.mktemp("hostile"), bases)


def _check_refusal(result: subprocess.CompletedProcess, runner: str, case: str, golden: Golden) -> list[str]:
    """What is wrong with the runner's answer to a hostile case (nothing: [])."""
    expect = HOSTILE[case][2]
    expected = (expect[runner] if isinstance(expect, dict) else expect)(golden)
    lines = result.stderr.strip().splitlines()
    problems = []
    if result.returncode != 2:
        problems.append(f"exit {result.returncode}, expected 2")
    if len(lines) != 1 or not lines[0].startswith(f"{runner}: error: "):
        problems.append("stderr is not one line starting with '<runner>: error: '")
    problems += [f"stderr lacks {text!r}" for text in expected if text not in result.stderr]
    if SANITIZER_REPORT.search(result.stderr):
        problems.append("sanitizer report")
    if problems:
        problems = [f"{case} ({runner}): " + "; ".join(problems) + f"\n    stderr: {result.stderr[-3000:]}"]
    return problems


@pytest.mark.parametrize("case", sorted(HOSTILE))
@pytest.mark.parametrize("name", RUNNERS)
def test_hostile_input_exits_2_with_one_line(runners, hostile_models, name, case):
    golden = hostile_models[case]
    problems = _check_refusal(run(runners[name], str(golden.root)), name, case, golden)
    assert not problems, "\n".join(problems)


# -- build hygiene ------------------------------------------------------------------------


def test_every_header_compiles_on_its_own(build_dir):
    """Target lif_header_check (part of the default build) compiles each header of cpp/common
    alone, twice in a row, with -Wall -Wextra -Werror."""
    assert COMMON_HEADERS, "no headers in cpp/common"
    assert not (ROOT / "cpp" / "common" / "json.hpp").exists(), "the hand-written JSON parser is back"
    objects = {p.name for p in (build_dir / "CMakeFiles" / "lif_header_check.dir").rglob("*.o")}
    for header in COMMON_HEADERS:
        assert f"{header.replace('.', '_')}.cpp.o" in objects, f"{header} was not compiled on its own"
    cache = (build_dir / "CMakeCache.txt").read_text()
    assert "LIF_WERROR:BOOL=ON" in cache and "LIF_CHECK_HEADERS:BOOL=ON" in cache


def test_ctest_runs_each_runner_on_a_models_dir(build_dir, exported):
    env = {**os.environ, "LIF_MODELS_DIR": str(exported)}
    result = subprocess.run(["ctest", "--test-dir", str(build_dir), "--output-on-failure"], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for runner in RUNNERS:
        for test in ("help", "usage", "golden"):
            assert re.search(rf"{runner}\.{test} \.+\s+Passed", result.stdout), result.stdout
    assert "100% tests passed" in result.stdout


def test_ort_headers_are_pinned_by_version_and_sha256(build_dir, tmp_path):
    """The build's ONNX Runtime headers come from a tarball verified against the pinned sha256,
    and a tarball with another hash stops the configure step, keeping nothing."""
    script = ROOT / "cpp" / "cmake" / "OrtHeaders.cmake"
    text = script.read_text()
    assert re.search(r'set\(LIF_ORT_HEADERS_VERSION "0\.4\.9"\)', text)
    pinned = re.search(r'set\(LIF_ORT_HEADERS_SHA256 "([0-9a-f]{64})"\)', text)
    assert pinned, "OrtHeaders.cmake pins no sha256"
    pinned = pinned.group(1)
    cache = (build_dir / "CMakeCache.txt").read_text()
    headers = Path(re.search(r"LIF_ORT_HEADERS_CACHE_DIR:PATH=(.*)", cache).group(1)) / "include"
    assert (headers / ".sha256").read_text().strip() == pinned

    fake = tmp_path / "com.github.asus4.onnxruntime-0.4.9.tgz"
    fake.write_bytes(b"not the pinned package")
    result = subprocess.run(["cmake", f"-DLIF_ORT_HEADERS_TARBALL={fake}", f"-DLIF_ORT_HEADERS_CACHE_DIR={tmp_path}",
                             "-P", str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert "sha256 mismatch" in result.stderr, result.stderr
    assert pinned in result.stderr and hashlib.sha256(fake.read_bytes()).hexdigest() in result.stderr
    assert not (tmp_path / "include").exists(), "an unverified tarball's headers were kept"


# -- the sanitizer build ------------------------------------------------------------------


@pytest.mark.parametrize("name", RUNNERS)
def test_sanitized_runner_passes_golden_vectors(asan_runners, exported, network_models, name):
    for models in (exported, network_models):
        result = run(asan_runners[name], str(models), env=SANITIZER_ENV)
        assert not SANITIZER_REPORT.search(result.stderr), result.stderr[-6000:]
        assert result.returncode == 0, result.stdout + result.stderr[-6000:]
        assert re.search(r"OK: [1-9][0-9]* runs, 0 mismatching", result.stdout), result.stdout


# Under the sanitizers the ONNX Runtime runner gets every hostile case. The torch runner,
# whose startup under ASan costs about a second each, gets those that reach its own code
# (model loading, argument order) and the ones the reliability issue names: everything
# else exercises only the header-only harness (common/), the same code in both runners.
ASAN_TORCH_CASES = ["short_spike", "short_v_trace", "empty_v_trace", "scalar_x", "truncated_npy",
                    "manifest_version_1_5", "reversed_inputs", "reversed_network_inputs", "reversed_outputs",
                    "missing_model", "garbage_model"]


@pytest.mark.parametrize("name", RUNNERS)
def test_sanitized_runner_refuses_hostile_inputs(asan_runners, hostile_models, name):
    """Hostile cases under ASan + UBSan: exit 2, one line, no sanitizer report (two runs at a time)."""
    cases = sorted(HOSTILE) if name == "lif_ort_runner" else ASAN_TORCH_CASES
    goldens = {case: hostile_models[case] for case in cases}  # made here, not in the threads

    def one(case: str) -> list[str]:
        golden = goldens[case]
        return _check_refusal(run(asan_runners[name], str(golden.root), env=SANITIZER_ENV), name, case, golden)

    with ThreadPoolExecutor(max_workers=2) as pool:
        problems = [p for found in pool.map(one, cases) for p in found]
    assert not problems, "\n".join(problems)
