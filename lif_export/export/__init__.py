"""Export a LIF neuron as TorchScript and ONNX step and sequence graphs.

:func:`export` writes, into one folder:

* ``lif_step.onnx`` / ``lif_sequence.onnx`` - ONNX graphs, state as explicit input/output;
* ``lif_step.pt`` / ``lif_sequence.pt`` / ``lif_neuron.pt`` - TorchScript modules;
* ``manifest.json`` - everything a host needs to drive them (see :mod:`.manifest`);
* ``vectors/<case>/`` - golden vectors (see :mod:`.vectors`).

Every file is built and checked in a staging folder first and then renamed
into place, the manifest last, so a failure or Ctrl-C never leaves a
half-written model, and an error found before writing leaves the previous
set untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnxruntime as ort
import torch
from torch import nn

from ..io import atomic_write_text
from . import manifest as manifest_mod
from . import onnx_graphs, torchscript, vectors
from .manifest import EMBEDDED_KEY, MANIFEST_NAME
from .spec import NeuronSpec, spec_from_module, spec_from_state_dict

__all__ = ["ExportResult", "NeuronSpec", "export", "spec_from_module", "spec_from_state_dict"]


@dataclass
class ExportResult:
    out_dir: Path
    manifest: dict

    @property
    def files(self) -> list[Path]:
        return [self.out_dir / a["file"] for a in self.manifest["artifacts"]]


def _check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as err:
        raise PermissionError(f"--out directory {str(out_dir)!r} is not writable: {err.strerror}") from None


def write_onnx(model: onnx.ModelProto, path: Path, entry: dict) -> None:
    """Check ``model`` fully, save it, load it in onnxruntime, and record its sha256 in ``entry``."""
    onnx_graphs.check(model)
    onnx.save(model, path)
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # loads, or raises here
    entry["sha256"] = manifest_mod.sha256_file(path)


def write_torchscript(module: torch.jit.ScriptModule, path: Path, entry: dict) -> None:
    """Save a scripted module with its manifest entry embedded; record its sha256 in ``entry``."""
    embedded = {k: v for k, v in entry.items() if k != "sha256"}
    torch.jit.save(module, str(path), _extra_files={EMBEDDED_KEY: json.dumps(embedded)})
    entry["sha256"] = manifest_mod.sha256_file(path)


def embedded_metadata(entry: dict) -> dict[str, str]:
    """An artifact's manifest entry (without its own checksum) for ONNX ``metadata_props``."""
    return {EMBEDDED_KEY: json.dumps({k: v for k, v in entry.items() if k != "sha256"})}


def progress_line(index: int, total: int, staging: Path, entry: dict) -> str:
    size = (staging / entry["file"]).stat().st_size
    return (f"[{index}/{total}] {entry['file']:<20} {entry['format']:<11} {entry['kind']:<15} "
            f"{size / 1024:7.1f} KiB  sha256 {entry['sha256'][:12]}")


def write_set(out_dir: str | Path, build: Callable[[Path], dict]) -> ExportResult:
    """Run ``build(staging) -> manifest`` in a staging folder inside ``out_dir``, validate the
    manifest, then move everything into place (manifest last). Nothing is left half-written."""
    out_dir = Path(out_dir)
    _check_writable(out_dir)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".staging-"))
    try:
        manifest = build(staging)
        manifest_mod.validate(manifest)
        _commit(staging, out_dir, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out_dir, manifest)


def export(
    neuron: NeuronSpec | nn.Module | None = None,
    out_dir: str | Path = "models",
    opset: int = onnx_graphs.DEFAULT_OPSET,
    dtype: str | None = None,
    report: Callable[[str], None] | None = None,
) -> ExportResult:
    """Write the TorchScript and ONNX artifacts, manifest and golden vectors.

    Args:
        neuron: a :class:`NeuronSpec`, or a ``LIFNeuron``/``LIFCell``/
            ``LIFSequence`` (trained or not; its hidden state is lifted into
            explicit inputs). ``None`` exports the default neuron.
        out_dir: destination folder (created if missing).
        opset: ONNX opset, from 17 to the newest the installed onnxruntime runs.
        dtype: ``"float32"`` or ``"float64"``; overrides a module's own dtype.
        report: called with one progress line per artifact.

    Returns:
        The folder and the manifest written.
    """
    report = report or (lambda line: None)
    if neuron is None:
        spec = NeuronSpec(dtype=dtype or "float32")
    elif isinstance(neuron, NeuronSpec):
        spec = neuron if dtype is None else NeuronSpec(**{**neuron.__dict__, "dtype": dtype})
    else:
        spec = spec_from_module(neuron, dtype)
    opset = onnx_graphs.check_opset(opset)

    def build(staging: Path) -> dict:
        entries = manifest_mod.artifact_entries(spec, opset)
        total = len(entries) + len(vectors.CASES)
        for i, entry in enumerate(entries, 1):
            path = staging / entry["file"]
            if entry["format"] == "onnx":
                graph = onnx_graphs.step_graph if entry["kind"] == "step" else onnx_graphs.sequence_graph
                write_onnx(graph(spec, opset, embedded_metadata(entry)), path, entry)
            else:
                write_torchscript(torchscript.scripted(spec, entry["kind"]), path, entry)
            report(progress_line(i, total, staging, entry))
        cases = []
        for j, case in enumerate(vectors.CASES.values(), len(entries) + 1):
            cases.append(vectors.write_case(spec, case, staging / "vectors" / case.name))
            report(f"[{j}/{total}] vectors/{case.name:<12} golden vectors, {case.steps} steps")
        return manifest_mod.new_manifest(entries, cases, neuron=spec.to_json())

    return write_set(out_dir, build)


def _commit(staging: Path, out_dir: Path, manifest: dict) -> None:
    """Move the staged set into ``out_dir``: each file by an atomic rename, the manifest last."""
    old_files: set[str] = set()
    old_manifest = out_dir / MANIFEST_NAME
    if old_manifest.is_file():
        try:
            old_files = {a["file"] for a in json.loads(old_manifest.read_text()).get("artifacts", [])}
        except (json.JSONDecodeError, AttributeError, TypeError):
            old_files = set()
    for entry in manifest["artifacts"]:
        os.replace(staging / entry["file"], out_dir / entry["file"])
    target = out_dir / "vectors"
    retired = None
    if target.exists():
        retired = Path(tempfile.mkdtemp(dir=out_dir, prefix=".vectors-old-"))
        os.replace(target, retired / "vectors")
    os.replace(staging / "vectors", target)
    atomic_write_text(out_dir / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    for stale in old_files - {a["file"] for a in manifest["artifacts"]}:
        (out_dir / stale).unlink(missing_ok=True)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)
