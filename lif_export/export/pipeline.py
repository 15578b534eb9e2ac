"""The one export pipeline: a model, lowered to layers with explicit state, is planned by every
requested format, written into a staging folder with its golden vectors and manifest, checked,
and committed into the output folder.

Planning comes first and raises (naming the layer or the option) before anything is written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cases import golden_cases
from ..io import atomic_write_text
from . import manifest as manifest_mod
from . import vectors
from .formats import FORMATS, Artifact, ExportOptions
from .manifest import MANIFEST_NAME
from .model import ExportModel

#: The formats an export writes unless told otherwise.
DEFAULT_FORMATS = ("onnx", "torchscript")

#: ``name -> (description, x[time, batch, *features])``: golden-vector cases of the caller's own.
ExtraCases = dict[str, tuple[str, np.ndarray]]


@dataclass
class ExportResult:
    out_dir: Path
    manifest: dict

    @property
    def files(self) -> list[Path]:
        return [self.out_dir / a["file"] for a in self.manifest["artifacts"]]


def export_model(
    model: ExportModel,
    out_dir: str | Path,
    formats: Iterable[str] = DEFAULT_FORMATS,
    options: ExportOptions | None = None,
    report: Callable[[str], None] | None = None,
    extra_cases: ExtraCases | None = None,
) -> ExportResult:
    """Write ``model`` in every format of ``formats``, its golden vectors and ``manifest.json``."""
    options = options or ExportOptions()
    report = report or (lambda line: None)
    formats = list(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"format must be one of {list(FORMATS)}, got {unknown or formats}")
    planned: list[Artifact] = [a for f in formats for a in FORMATS[f](model, options)]
    cases = golden_cases(model.signature())

    def build(staging: Path) -> dict:
        total = len(planned) + len(cases) + len(extra_cases or {})
        for i, artifact in enumerate(planned, 1):
            artifact.write(staging)
            artifact.entry["sha256"] = manifest_mod.sha256_file(staging / artifact.entry["file"])
            report(progress_line(i, total, staging, artifact.entry))
        written = []
        for j, case in enumerate(cases, len(planned) + 1):
            written.append(vectors.write_catalogue_case(model, case, staging / "vectors" / case.name))
            report(f"[{j}/{total}] vectors/{case.name:<20} golden vectors, {case.steps} steps")
        for j, (name, (description, x)) in enumerate((extra_cases or {}).items(), len(planned) + len(cases) + 1):
            x = np.asarray(x)
            states = {s.input: np.zeros(model.state_shape(s, x.shape[1]), model.numpy_dtype) for s in model.states}
            written.append(vectors.write_case(model, name, description, x, states, staging / "vectors" / name))
            report(f"[{j}/{total}] vectors/{name:<20} golden vectors, {x.shape[0]} steps x batch {x.shape[1]}")
        return manifest_mod.new_manifest([a.entry for a in planned], written,
                                         **{model.description_key: model.description})

    return write_set(out_dir, build)


def progress_line(index: int, total: int, staging: Path, entry: dict) -> str:
    size = (staging / entry["file"]).stat().st_size
    return (f"[{index}/{total}] {entry['file']:<22} {entry['format']:<11} {entry['kind']:<16} "
            f"{size / 1024:7.1f} KiB  sha256 {entry['sha256'][:12]}")


def _check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as err:
        raise PermissionError(f"--out directory {str(out_dir)!r} is not writable: {err.strerror}") from None


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
