"""``lif-export verify``: every artifact, fresh from disk, against eager PyTorch, bit for bit.

1. Each artifact's sha256 is checked against the manifest; a changed file is
   reported and never run.
2. Every backend variation (see :mod:`lif_export.backends`) runs every input
   case of the catalogue (:mod:`lif_export.cases`); results are compared bit for
   bit with eager PyTorch: ``lif_sequence`` rebuilt from a neuron's manifest
   parameters, or a network's scripted eager module.
3. The golden vectors are compared against every backend, eager included.

``full=True`` adds every variation, long suites, and a matrix of fresh
exports (both dtypes, every reset, scalar and per-neuron parameters, every
supported opset) verified the same way.
"""

from __future__ import annotations

import sys
import tempfile
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..backends import REGISTRY, Backend, Context, EagerSequence, Tensors
from ..backends.torchscript import TorchScriptArtifact
from ..cases import CASES, cases_for
from ..export import manifest as manifest_mod
from ..export import vectors
from ..export.formats import onnx as onnx_format
from ..export.spec import NeuronSpec
from .compare import Comparison, compare


@dataclass
class VerifyReport:
    models_dir: Path
    comparisons: list[Comparison] = field(default_factory=list)
    checksum_failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

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


def check_checksums(models_dir: Path, manifest: dict) -> tuple[list[str], frozenset[str]]:
    """``(messages, names of unusable artifacts)``."""
    failures, unusable = [], set()
    for entry in manifest["artifacts"]:
        path = models_dir / entry["file"]
        if not path.is_file():
            failures.append(f"{entry['file']}: missing")
        elif (digest := manifest_mod.sha256_file(path)) != entry["sha256"]:
            failures.append(
                f"{entry['file']}: sha256 {digest[:16]}... does not match the manifest's "
                f"{entry['sha256'][:16]}... (changed since export; not run)"
            )
        else:
            continue
        unusable.add(entry["name"])
    return failures, frozenset(unusable)


def build_backends(ctx: Context, families: Iterable[str] | None = None) -> list[Backend]:
    selected = list(REGISTRY) if families is None else list(families)
    unknown = [f for f in selected if f not in REGISTRY]
    if unknown:
        raise ValueError(f"backend must be one of {sorted(REGISTRY)}, got {unknown}")
    return [backend for family in selected for backend in REGISTRY[family](ctx)]


def _run(backend: Backend, case: str, x: np.ndarray, states: Tensors, expected: Tensors) -> Comparison:
    try:
        return compare(backend.name, case, expected, backend.run(x, states))
    except Exception as err:  # noqa: BLE001 - a crashing backend is a reported failure
        detail = traceback.format_exception_only(err)[-1].strip()
        return Comparison(backend.name, case, x.shape[0], -1, -1, -1, float("inf"), f"error: {detail}")


#: ``(name, make() -> (x, initial states, expected outputs), backends)``
Case = tuple[str, Callable[[], tuple[np.ndarray, Tensors, Tensors]], list[Backend]]


def reference_backend(ctx: Context, report: VerifyReport) -> Backend | None:
    """Eager ``lif_sequence`` rebuilt from a neuron's manifest parameters; for a network (whose weights
    are in its artifacts, not its manifest), the scripted eager network of its sequence artifact."""
    if "neuron" in ctx.manifest:
        return EagerSequence(NeuronSpec.from_json(ctx.manifest["neuron"]))
    if ctx.usable("torchscript_sequence"):
        return TorchScriptArtifact(ctx, "torchscript_sequence")
    report.errors.append("torchscript_sequence is missing or failed its checksum: the input cases have no reference")
    return None


def verify_dir(
    models_dir: Path,
    full: bool = False,
    families: Iterable[str] | None = None,
    cases: Iterable[str] | None = None,
    progress: bool = True,
) -> VerifyReport:
    """Verify one exported folder; see the module docstring."""
    models_dir = Path(models_dir)
    report = VerifyReport(models_dir)
    manifest = manifest_mod.load_manifest(models_dir)
    report.checksum_failures, unusable = check_checksums(models_dir, manifest)
    ctx = Context(models_dir, manifest, full, unusable)
    wanted = _check_case_names(cases, manifest)
    signature = ctx.signature()
    backends = build_backends(ctx, families)
    reference = reference_backend(ctx, report)
    plan: list[Case] = []
    if reference is not None:
        for case in cases_for(signature):
            if wanted is None or case.name in wanted:
                plan.append((case.name, lambda c=case: _with_reference(reference, *c.build(signature, full)),
                             backends))
    for entry in manifest["vectors"]:
        if wanted is None or entry["case"] in wanted or f"golden:{entry['case']}" in wanted:
            golden_backends = [reference, *backends] if isinstance(reference, EagerSequence) else backends
            plan.append((f"golden:{entry['case']}", lambda e=entry: _golden(models_dir, e), golden_backends))
    _run_cases(report, plan, models_dir, progress)
    return report


def _golden(models_dir: Path, entry: dict) -> tuple[np.ndarray, Tensors, Tensors]:
    ins, outs = vectors.read_case(models_dir / entry["dir"])
    return ins.pop("x"), ins, outs


def _with_reference(reference: Backend, x: np.ndarray, states: Tensors) -> tuple[np.ndarray, Tensors, Tensors]:
    return x, states, reference.run(x, states)


def _run_cases(report: VerifyReport, cases: list[Case], models_dir: Path, progress: bool) -> None:
    total = sum(len(backends) for _, _, backends in cases)
    with tqdm(total=total, desc=f"verify {models_dir}", unit="run", disable=not progress, file=sys.stderr,
              leave=False) as bar:
        for name, make, backends in cases:
            x, states, expected = make()
            for backend in backends:
                report.comparisons.append(_run(backend, name, x, states, expected))
                bar.update()


def _check_case_names(cases: Iterable[str] | None, manifest: dict) -> set[str] | None:
    """The selected case names, ``None`` for all; unknown names are an error listing the known ones."""
    if cases is None:
        return None
    wanted = set(cases)
    known = set(CASES) | {v["case"] for v in manifest["vectors"]} | {f"golden:{v['case']}" for v in manifest["vectors"]}
    unknown = sorted(wanted - known)
    if unknown:
        raise ValueError(f"case must be one of {sorted(known)}, got {unknown}")
    return wanted


def matrix_specs() -> list[NeuronSpec]:
    """Both dtypes x every reset x scalar and per-neuron parameters."""
    specs = []
    for dtype in ("float32", "float64"):
        for reset in ("zero", "subtract", "none"):
            specs.append(NeuronSpec(threshold=1.0, beta=0.9, v_reset=-0.1, reset=reset, dtype=dtype))
            specs.append(NeuronSpec(
                threshold=[0.5 + 0.125 * i for i in range(8)],
                beta=[i / 7 for i in range(8)],
                v_reset=[0.0, -0.25] * 4, reset=reset, dtype=dtype,
            ))
    return specs


def model_networks() -> dict[str, tuple[object, tuple[int, ...]]]:
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
        SpikingSequential,
        SynapticLIFLayer,
    )

    def net(layer) -> tuple[SpikingSequential, tuple[int, ...]]:  # noqa: ANN001
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


def verify_matrix(progress: bool = True, report_line=print) -> VerifyReport:
    """Export and verify every configuration of :func:`matrix_specs`, every opset, and a small
    network per neuron model in both dtypes."""
    from ..export import export, export_network

    newest = onnx_format.newest_runnable_opset()
    exports: list[tuple[str, Callable[[str], object]]] = []
    for spec in matrix_specs():
        per_neuron = "per-neuron" if isinstance(spec.beta, list) else "scalar"
        exports.append((f"{spec.dtype}/{spec.reset}/{per_neuron}/opset={onnx_format.DEFAULT_OPSET}",
                        lambda tmp, spec=spec: export(spec, tmp)))
    for opset in range(onnx_format.MIN_OPSET, newest + 1):
        if opset != onnx_format.DEFAULT_OPSET:
            exports.append((f"float32/zero/scalar/opset={opset}",
                            lambda tmp, o=opset: export(NeuronSpec(), tmp, opset=o)))
    for name, (network, features) in model_networks().items():
        for dtype in ("float32", "float64"):
            exports.append((f"network {name}/{dtype}",
                            lambda tmp, n=network, f=features, d=dtype: export_network(n, f, tmp, dtype=d)))
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
    """A fixed-width table, one row per backend x case (or per backend with ``summary``)."""
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
    width = max([len(r.backend) for r in rows] + [7])
    cwidth = max([len(r.case) for r in rows] + [4])
    lines = [f"{'backend':<{width}}  {'case':<{cwidth}}  {'steps':>6}  {'spikes':>7}  "
             f"{'Δspikes':>7}  {'Δv':>6}  {'max|Δv|':>9}  result"]
    lines.append("-" * len(lines[0]))
    for r in rows:
        lines.append(
            f"{r.backend:<{width}}  {r.case:<{cwidth}}  {r.steps:>6}  {r.spikes:>7}  {r.spike_mismatches:>7}  "
            f"{r.potential_mismatches:>6}  {r.max_abs_dv:>9.3g}  {'ok' if r.ok else 'MISMATCH'}"
        )
    return "\n".join(lines)
