"""``lif-export verify``: every artifact, fresh from disk, against eager PyTorch, bit for bit.

1. Before anything runs, every file the manifest names is checked (:func:`check_checksums`):
   each artifact and companion file against its sha256, the manifest embedded in an ONNX or
   TorchScript artifact against the artifact's entry, and every golden-vector file (``.pb`` and
   ``.npy``) against its sha256, each ``.pb`` against its ``.npy`` (same bits) and both against
   the manifest's name, dtype and shape. A file that fails is reported and never run. The files
   are read from the set ``manifest.json`` resolves to, so an export committing meanwhile cannot
   mix two sets.
2. Every backend variation (see :mod:`lif_export.backends`) runs every input
   case of the catalogue (:mod:`lif_export.cases`); results are compared bit for
   bit with eager PyTorch: ``lif_sequence`` rebuilt from a neuron's manifest
   parameters, or a network's scripted eager module.
3. The golden vectors are compared against every backend, eager included.

``full=True`` adds every variation, long suites, and a matrix of fresh
exports (both dtypes, every reset, scalar and per-neuron parameters, every
supported opset) verified the same way.

A float-tier export (``manifest.json``: ``"exactness": "float"``, docs/networks.md) is judged in
steps 2 and 3 within a :class:`~lif_export.conformance.compare.Tolerance` instead of bit for bit:
each run reports its spike agreement rate, the first step where a spike differs and the largest
readout or potential difference (:func:`~lif_export.conformance.compare.compare_within`).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from tqdm import tqdm

from ..backends import REGISTRY, Backend, Context, EagerSequence, Tensors
from ..backends.torchscript import TorchScriptArtifact
from ..cases import CASES, Signature, cases_for
from ..cases import Case as InputCase
from ..errors import InvalidValueError
from ..export import manifest as manifest_mod
from ..export import vectors
from ..export.formats import c as c_format
from ..export.formats import onnx as onnx_format
from ..export.formats import torchscript as ts_format
from ..export.spec import NeuronSpec
from ..network import SpikingSequential
from .compare import Comparison, Tolerance, ToleranceComparison, compare, compare_within


@dataclass
class VerifyReport:
    models_dir: Path
    comparisons: list[Comparison] = field(default_factory=list)
    checksum_failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    exactness: str = "exact"  # the manifest's tier
    tolerance: Tolerance | None = None  # what the float tier was judged by (None: bit for bit)
    notes: list[str] = field(default_factory=list)  # what was left out, and why

    @property
    def mismatches(self) -> list[Comparison]:
        return [c for c in self.comparisons if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.checksum_failures and not self.errors and bool(self.comparisons)

    def extend(self, other: VerifyReport) -> None:
        self.comparisons += other.comparisons
        self.checksum_failures += other.checksum_failures
        self.errors += other.errors
        self.notes += other.notes


@dataclass(frozen=True)
class FileCheck:
    """What :func:`check_checksums` found: messages, and what must not run."""

    failures: list[str]
    unusable: frozenset[str]  # artifact names
    bad_cases: frozenset[str]  # golden-vector case names


def _detail(err: BaseException) -> str:
    return traceback.format_exception_only(err)[-1].strip()


def _check_file(models_dir: Path, rel: str, sha256: str) -> str | None:
    path = models_dir / rel
    if not path.is_file():
        return f"{rel}: missing"
    digest = manifest_mod.sha256_file(path)
    if digest != sha256:
        return (f"{rel}: sha256 {digest[:16]}... does not match the manifest's {sha256[:16]}... "
                "(changed since export; not run)")
    return None


def _onnx_embedded(path: Path) -> dict:
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if manifest_mod.EMBEDDED_KEY not in props:
        raise InvalidValueError(f"no {manifest_mod.EMBEDDED_KEY} in its metadata_props")
    return json.loads(props[manifest_mod.EMBEDDED_KEY])


#: format -> reader of the manifest entry embedded in an artifact (formats without one are not listed).
EMBEDDED_READERS: dict[str, Callable[[Path], dict]] = {
    "onnx": _onnx_embedded,
    "torchscript": ts_format.embedded_entry,
    "c": c_format.embedded_entry,
}


def _check_embedded(models_dir: Path, entry: dict) -> str | None:
    """The entry embedded in the artifact equals manifest.json's (checksums and companions aside:
    they are only known once the artifact is written)."""
    reader = EMBEDDED_READERS.get(entry["format"])
    if reader is None:
        return None
    try:
        embedded = reader(models_dir / entry["file"])
    except Exception as err:  # any parser error means the file is not what it claims to be
        return f"{entry['file']}: not a readable {entry['format']} artifact ({_detail(err)}); not run"
    if not isinstance(embedded, dict):
        return f"{entry['file']}: its embedded manifest is not a JSON object; not run"
    want = {k: v for k, v in entry.items() if k not in ("sha256", "companions")}
    got = {k: v for k, v in embedded.items() if k not in ("sha256", "companions")}
    difference = _first_difference(got, want)
    if difference is not None:
        return f"{entry['file']}: its embedded manifest differs from manifest.json at {difference}; not run"
    return None


def _first_difference(got: object, want: object, where: str = "") -> str | None:
    """``"<path>: <got> vs <want>"`` at the first place two JSON values differ, ``None`` if equal."""
    if isinstance(got, dict) and isinstance(want, dict):
        for key in sorted(set(got) | set(want), key=str):
            found = _first_difference(got.get(key), want.get(key), f"{where}.{key}" if where else str(key))
            if found is not None:
                return found
        return None
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return next((d for i, (g, w) in enumerate(zip(got, want, strict=True))
                     if (d := _first_difference(g, w, f"{where}[{i}]")) is not None), None)
    return None if got == want else f"{where}: {str(got)[:40]} vs {str(want)[:40]}"


def _check_case(models_dir: Path, case: dict) -> list[str]:
    """A golden-vector case: every file against its sha256, each tensor's ``.pb`` and ``.npy`` against
    each other (same bits) and against the manifest's name, dtype and shape."""
    folder = case["dir"]
    if "files" not in case:
        return [f"{folder}: manifest.json records no checksums of its files (an older lif-export wrote it); "
                "export again"]
    problems = [p for f in case["files"] if (p := _check_file(models_dir, f["file"], f["sha256"]))]
    if problems:
        return problems
    listed = {f["file"] for f in case["files"]}
    tensors = [(f"input_{i}", t) for i, t in enumerate(case["inputs"])]
    tensors += [(f"output_{i}", t) for i, t in enumerate(case["outputs"])]
    for stem, tensor in tensors:
        pb, npy = f"{folder}/{stem}.pb", f"{folder}/{tensor['name']}.npy"
        unlisted = [f for f in (pb, npy) if f not in listed]
        if unlisted:
            return [f"{unlisted[0]}: not among the case's files in manifest.json"]
        try:
            name, from_pb = vectors.load_tensor(models_dir / pb)
        except Exception as err:  # a parser error means a malformed file
            return [f"{pb}: not an ONNX TensorProto ({_detail(err)})"]
        try:
            from_npy = np.load(models_dir / npy, allow_pickle=False)
        except Exception as err:  # likewise
            return [f"{npy}: not a .npy array ({_detail(err)})"]
        want = f"{tensor['name']} {tensor['dtype']}{list(tensor['shape'])}"
        for file, got in ((pb, f"{name} {from_pb.dtype}{list(from_pb.shape)}"),
                          (npy, f"{tensor['name']} {from_npy.dtype}{list(from_npy.shape)}")):
            if got != want:
                return [f"{file}: holds {got} where manifest.json says {want}"]
        if from_pb.tobytes() != np.ascontiguousarray(from_npy).tobytes():
            return [f"{pb} and {npy}: the same tensor with different bits"]
    return []


def check_checksums(models_dir: Path, manifest: dict) -> FileCheck:
    """Check every file the manifest names before anything runs (see the module docstring)."""
    failures, unusable, bad_cases = [], set(), set()
    for entry in manifest["artifacts"]:
        problems = [p for f in (entry, *entry.get("companions", []))
                    if (p := _check_file(models_dir, f["file"], f["sha256"]))]
        if not problems and (mismatch := _check_embedded(models_dir, entry)):
            problems.append(mismatch)
        if problems:
            failures += problems
            unusable.add(entry["name"])
    for case in manifest["vectors"]:
        problems = _check_case(models_dir, case)
        if problems:
            failures += problems
            bad_cases.add(case["case"])
    return FileCheck(failures, frozenset(unusable), frozenset(bad_cases))


def _check_families(families: Iterable[str] | None) -> list[str]:
    """The selected backend families, all of them for ``None``; an unknown name is an error listing them."""
    selected = list(REGISTRY) if families is None else list(families)
    unknown = [f for f in selected if f not in REGISTRY]
    if unknown:
        raise InvalidValueError(f"backend must be one of {sorted(REGISTRY)}, got {unknown}")
    return selected


def build_backends(ctx: Context, families: Iterable[str] | None = None,
                   errors: list[str] | None = None) -> list[Backend]:
    """Every backend of the selected families; with ``errors``, a family that fails to load its
    artifacts is recorded there (and skipped) instead of raising."""
    backends = []
    for family in _check_families(families):
        try:
            backends += list(REGISTRY[family](ctx))
        except Exception as err:  # reported as a failure of that family
            if errors is None:
                raise
            errors.append(f"{family}: cannot load its artifacts: {_detail(err)}")
    return backends


#: ``judge(backend name, case, expected, got) -> Comparison``: bit for bit, or within a tolerance.
Judge = Callable[[str, str, Tensors, Tensors], Comparison]


def _run(backend: Backend, case: str, x: np.ndarray, states: Tensors, expected: Tensors,
         judge: Judge = compare) -> Comparison:
    try:
        return judge(backend.name, case, expected, backend.run(x, states))
    except Exception as err:  # a crashing backend is a reported failure
        return Comparison(backend.name, case, x.shape[0], -1, -1, -1, float("inf"), f"error: {_detail(err)}")


#: ``(name, make() -> (x, initial states, expected outputs), backends)``
Case = tuple[str, Callable[[], tuple[np.ndarray, Tensors, Tensors]], list[Backend]]


def reference_backend(ctx: Context, report: VerifyReport) -> Backend | None:
    """Eager ``lif_sequence`` rebuilt from a neuron's manifest parameters; for a network (whose weights
    are in its artifacts, not its manifest), the scripted eager network of its sequence artifact."""
    if "neuron" in ctx.manifest:
        return EagerSequence(NeuronSpec.from_json(ctx.manifest["neuron"]))
    if ctx.usable("torchscript_sequence"):
        try:
            return TorchScriptArtifact(ctx, "torchscript_sequence")
        except Exception as err:  # a file that passed its checks but does not load
            report.errors.append(f"torchscript_sequence cannot be loaded: {_detail(err)}")
            return None
    report.errors.append("torchscript_sequence is missing or failed its checksum: the input cases have no reference")
    return None


def judge_for(manifest: dict, tolerance: Tolerance | None) -> tuple[Judge, Tolerance | None]:
    """Bit for bit for an exact-tier manifest; within ``tolerance`` (default :class:`Tolerance`) for a
    float-tier one, its spike results named by the manifest (``network.spike_outputs``)."""
    if manifest_mod.exactness(manifest) == "exact":
        return compare, None
    tolerance = tolerance or Tolerance()
    spikes = set(manifest["network"].get("spike_outputs", [])) if "network" in manifest else {"spike"}
    return functools.partial(compare_within, tolerance=tolerance, spikes=spikes), tolerance


def verify_dir(
    models_dir: Path,
    full: bool = False,
    families: Iterable[str] | None = None,
    cases: Iterable[str] | None = None,
    progress: bool = True,
    tolerance: Tolerance | None = None,
) -> VerifyReport:
    """Verify one exported folder; see the module docstring. ``tolerance`` judges a float-tier export
    (default :class:`Tolerance`); an exact-tier one is always compared bit for bit."""
    report = VerifyReport(Path(models_dir))
    models_dir = manifest_mod.pinned_folder(Path(models_dir))
    manifest = manifest_mod.load_manifest(models_dir)
    judge, report.tolerance = judge_for(manifest, tolerance)
    report.exactness = manifest_mod.exactness(manifest)
    wanted = _check_case_names(cases, manifest)
    families = _check_families(families)
    files = check_checksums(models_dir, manifest)
    report.checksum_failures = files.failures
    ctx = Context(models_dir, manifest, full, files.unusable)
    signature = ctx.signature()
    backends = build_backends(ctx, families, report.errors)
    reference = reference_backend(ctx, report)
    plan: list[Case] = []
    if reference is not None:
        for case in cases_for(signature):
            if wanted is None and case.order_sensitive and report.tolerance is not None:
                report.notes.append(f"case {case.name!r} left out in the float tier: its sums overflow in some "
                                    "summation orders and not in others (ask for it with --case)")
            elif wanted is None or case.name in wanted:
                plan.append((case.name, functools.partial(_with_reference, reference, case, signature, full),
                             backends))
    for entry in manifest["vectors"]:
        if entry["case"] in files.bad_cases:
            continue
        if wanted is None or entry["case"] in wanted or f"golden:{entry['case']}" in wanted:
            golden_backends = [reference, *backends] if isinstance(reference, EagerSequence) else backends
            plan.append((f"golden:{entry['case']}", functools.partial(_golden, models_dir, entry), golden_backends))
    _run_cases(report, plan, report.models_dir, progress, judge)
    return report


def _golden(models_dir: Path, entry: dict) -> tuple[np.ndarray, Tensors, Tensors]:
    ins, outs = vectors.read_case(models_dir / entry["dir"])
    return ins.pop("x"), ins, outs


def _with_reference(reference: Backend, case: InputCase, signature: Signature,
                    full: bool) -> tuple[np.ndarray, Tensors, Tensors]:
    x, states = case.build(signature, full)
    return x, states, reference.run(x, states)


def _run_cases(report: VerifyReport, cases: list[Case], models_dir: Path, progress: bool,
               judge: Judge = compare) -> None:
    total = sum(len(backends) for _, _, backends in cases)
    with tqdm(total=total, desc=f"verify {models_dir}", unit="run", disable=not progress, file=sys.stderr,
              leave=False) as bar:
        for name, make, backends in cases:
            try:
                x, states, expected = make()
            except Exception as err:  # e.g. a reference that cannot run: reported, not raised
                report.errors.append(f"{name}: cannot make its inputs and expected outputs: {_detail(err)}")
                bar.update(len(backends))
                continue
            for backend in backends:
                report.comparisons.append(_run(backend, name, x, states, expected, judge))
                bar.update()


def _check_case_names(cases: Iterable[str] | None, manifest: dict) -> set[str] | None:
    """The selected case names, ``None`` for all; unknown names are an error listing the known ones."""
    if cases is None:
        return None
    wanted = set(cases)
    known = set(CASES) | {v["case"] for v in manifest["vectors"]} | {f"golden:{v['case']}" for v in manifest["vectors"]}
    unknown = sorted(wanted - known)
    if unknown:
        raise InvalidValueError(f"case must be one of {sorted(known)}, got {unknown}")
    return wanted


def matrix_specs() -> list[NeuronSpec]:
    """Both dtypes x every reset x scalar and per-neuron parameters."""
    specs = []
    for dtype in ("float32", "float64"):
        for reset in ("zero", "subtract", "none"):
            specs.append(NeuronSpec(threshold=1.0, beta=0.9, v_reset=-0.1, reset=reset, dtype=dtype,
                                    feature_shape=(8,)))  # a fixed size: the C format needs one
            specs.append(NeuronSpec(
                threshold=[0.5 + 0.125 * i for i in range(8)],
                beta=[i / 7 for i in range(8)],
                v_reset=[0.0, -0.25] * 4, reset=reset, dtype=dtype,
            ))
    return specs


def model_networks() -> dict[str, tuple[SpikingSequential, tuple[int, ...]]]:
    """One small network per neuron model (and reset), for each model's own conformance cases,
    and a convolutional one: name -> (network, input feature shape)."""
    import torch
    from torch import nn

    from ..network import (
        AdaptiveLIFLayer,
        ExactConv2d,
        ExactLinear,
        LeakyIntegratorLayer,
        LIFLayer,
        RecurrentLIFLayer,
        SynapticLIFLayer,
    )

    def net(layer: nn.Module) -> tuple[SpikingSequential, tuple[int, ...]]:
        torch.manual_seed(0)
        return SpikingSequential(ExactLinear(6, 8), layer, ExactLinear(8, 3), LeakyIntegratorLayer(3)), (6,)

    nets = {f"lif/{r}": net(LIFLayer(8, beta=torch.linspace(0, 1, 8), v_reset=-0.25, reset=r))
            for r in ("zero", "subtract", "none")}
    nets.update({f"synaptic/{r}": net(SynapticLIFLayer(8, alpha=0.7, reset=r)) for r in ("zero", "subtract")})
    nets.update({f"adaptive/{r}": net(AdaptiveLIFLayer(8, rho=0.9, b=0.3, reset=r)) for r in ("zero", "subtract")})
    nets["recurrent/zero"] = net(RecurrentLIFLayer(8))
    nets["leaky_integrator"] = net(LeakyIntegratorLayer(8, beta=0.8))
    torch.manual_seed(0)
    nets["conv"] = (SpikingSequential(ExactConv2d(1, 3, 3, padding=1), LIFLayer((3, 6, 6)), nn.MaxPool2d(2),
                                      nn.Flatten(), ExactLinear(27, 4), LeakyIntegratorLayer(4)), (1, 6, 6))
    return nets


#: Formats in every export of the matrix of fresh exports.
MATRIX_FORMATS = ("onnx", "torchscript", "c", "pt2")
#: Formats added where their runtime is installed: AOTInductor (a C++ compiler; packages are cached by content
#: in ~/.cache/lif_export/aoti, so only the first run compiles, tens of seconds per program) and ExecuTorch for
#: every model and dtype; OpenVINO for float32 neurons only (its CPU plugin has no float64, nor the float64
#: sums of the exact layers every matrix network has).
MATRIX_OPTIONAL_FORMATS = ("aoti", "executorch")
MATRIX_FLOAT32_NEURON_FORMATS = ("openvino",)


def _installed(fmt: str) -> bool:
    if fmt == "aoti":
        from ..export.formats import aoti as aoti_format

        try:
            aoti_format.toolchain()
        except RuntimeError:  # no C++ compiler
            return False
        return True
    return importlib.util.find_spec(fmt) is not None


def _matrix_formats(dtype: str, neuron: bool) -> list[str]:
    optional = (*MATRIX_OPTIONAL_FORMATS, *(MATRIX_FLOAT32_NEURON_FORMATS if neuron and dtype == "float32" else ()))
    return [*MATRIX_FORMATS, *(f for f in optional if _installed(f))]


def verify_matrix(progress: bool = True, report_line: Callable[[str], None] = print) -> VerifyReport:
    """Export and verify every configuration of :func:`matrix_specs` (in every format of
    :func:`_matrix_formats`), every opset, and a small network per neuron model in both dtypes."""
    from ..export import export, export_network

    newest = onnx_format.newest_runnable_opset()
    exports: list[tuple[str, Callable[[str], object]]] = []
    for spec in matrix_specs():
        per_neuron = "per-neuron" if isinstance(spec.beta, list) else "scalar"
        exports.append((f"{spec.dtype}/{spec.reset}/{per_neuron}/opset={onnx_format.DEFAULT_OPSET}",
                        functools.partial(export, spec, formats=_matrix_formats(spec.dtype, neuron=True))))
    for opset in range(onnx_format.MIN_OPSET, newest + 1):
        if opset != onnx_format.DEFAULT_OPSET:
            exports.append((f"float32/zero/scalar/opset={opset}",
                            functools.partial(export, NeuronSpec(), opset=opset, formats=["onnx"])))
    for name, (network, features) in model_networks().items():
        for dtype in ("float32", "float64"):
            exports.append((f"network {name}/{dtype}", functools.partial(
                export_network, network, features, dtype=dtype, formats=_matrix_formats(dtype, neuron=False))))
    report = VerifyReport(Path("<matrix>"))
    for label, write in exports:
        with tempfile.TemporaryDirectory(prefix="lif-export-matrix-") as tmp:
            write(tmp)
            sub = verify_dir(Path(tmp), full=False, progress=progress)
        for c in sub.comparisons:
            c.case = f"{label}:{c.case}"
        report.extend(sub)
        bad = len(sub.mismatches) + len(sub.errors) + len(sub.checksum_failures)
        report_line(f"matrix {label:<40} {len(sub.comparisons):4d} runs, {bad} mismatches")
    return report


def format_table(comparisons: list[Comparison], summary: bool = False) -> str:
    """A fixed-width table, one row per backend x case (or per backend with ``summary``); a float-tier
    report's (:class:`ToleranceComparison` rows) has the columns of :func:`format_tolerance_table`."""
    if any(isinstance(c, ToleranceComparison) for c in comparisons):
        return format_tolerance_table(comparisons, summary)
    rows = comparisons
    if summary:
        merged: dict[str, Comparison] = {}
        for c in comparisons:
            m = merged.setdefault(c.backend, Comparison(c.backend, "(all cases)", 0, 0, 0, 0, 0.0, None))
            m.steps += c.steps
            m.spikes += max(c.spikes, 0)
            m.spike_mismatches += abs(c.spike_mismatches)
            m.potential_mismatches += abs(c.potential_mismatches)
            m.max_abs_dv = max(m.max_abs_dv, c.max_abs_dv)
            m.first_difference = m.first_difference or c.first_difference
        rows = list(merged.values())
    return _table(rows, f"{'Δspikes':>7}  {'Δv':>6}  {'max|Δv|':>9}  result",
                  lambda r: f"{r.spike_mismatches:>7}  {r.potential_mismatches:>6}  {r.max_abs_dv:>9.3g}  "
                            f"{'ok' if r.ok else 'MISMATCH'}")


def _table(rows: list[Comparison], header: str, columns: Callable[[Comparison], str]) -> str:
    """Rows under a header: backend, case, steps and spikes, then ``header``'s columns (``columns(row)``)."""
    width = max([len(r.backend) for r in rows] + [7])
    cwidth = max([len(r.case) for r in rows] + [4])
    lines = [f"{'backend':<{width}}  {'case':<{cwidth}}  {'steps':>6}  {'spikes':>7}  {header}"]
    lines.append("-" * len(lines[0]))
    lines += [f"{r.backend:<{width}}  {r.case:<{cwidth}}  {r.steps:>6}  {r.spikes:>7}  {columns(r)}" for r in rows]
    return "\n".join(lines)


def _merged(rows: list[Comparison]) -> ToleranceComparison:
    """One backend's float-tier runs as one row: counts summed, agreements over every value."""
    first = next(r for r in rows if isinstance(r, ToleranceComparison))
    m = ToleranceComparison(first.backend, "(all cases)", 0, 0, 0, 0, 0.0, None, tolerance=first.tolerance)
    for r in rows:
        m.steps += max(r.steps, 0)
        m.spikes += max(r.spikes, 0)
        broken = r.spike_mismatches < 0 or m.spike_mismatches < 0  # a run that failed outright
        m.spike_mismatches = -1 if broken else m.spike_mismatches + r.spike_mismatches
        m.potential_mismatches += max(r.potential_mismatches, 0)
        m.max_abs_dv = max(m.max_abs_dv, r.max_abs_dv)
        m.first_difference = m.first_difference or r.first_difference
        if isinstance(r, ToleranceComparison):
            m.spike_values += r.spike_values
            m.readout_values += r.readout_values
            if r.first_spike_step is not None and m.first_spike_step is None:
                m.first_spike_step = r.first_spike_step
    if m.spike_values and m.spike_mismatches >= 0:
        m.spike_agreement = 1.0 - m.spike_mismatches / m.spike_values
    if m.readout_values:
        m.readout_agreement = 1.0 - m.potential_mismatches / m.readout_values
    return m


def format_tolerance_table(comparisons: list[Comparison], summary: bool = False) -> str:
    """The float tier's table: per run (or per backend with ``summary``) the spike agreement rate, the
    first step where a spike differs, the largest readout or potential difference and the share of
    readout and potential values within the tolerance."""
    rows = comparisons
    if summary:
        by_backend: dict[str, list[Comparison]] = {}
        for c in comparisons:
            by_backend.setdefault(c.backend, []).append(c)
        rows = [_merged(group) if any(isinstance(r, ToleranceComparison) for r in group) else group[0]
                for group in by_backend.values()]

    def columns(r: Comparison) -> str:
        if isinstance(r, ToleranceComparison):
            first = "-" if r.first_spike_step is None else f"step {r.first_spike_step}"
            rates = f"{r.spike_agreement:>15.6f}  {first:>10}  {r.max_abs_dv:>9.3g}  {r.readout_agreement:>10.6f}"
        else:  # a run that failed before its values could be compared
            rates = f"{'-':>15}  {'-':>10}  {'-':>9}  {'-':>10}"
        return f"{rates}  {'ok' if r.ok else 'OUT OF TOLERANCE'}"

    return _table(rows, f"{'spike agreement':>15}  {'1st Δspike':>10}  {'max|Δ|':>9}  {'within tol':>10}  result",
                  columns)
