"""The one export pipeline: a model, lowered to layers with explicit state, is planned by every
requested format, written into a staging folder with its golden vectors and manifest, checked,
and committed into the output folder in one atomic switch (:mod:`.commit`).

Planning comes first and raises (naming the layer or the option) before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from math import prod
from pathlib import Path

import numpy as np

from ..cases import DYNAMIC_SIZE, Case, golden_cases
from ..errors import InvalidValueError
from . import manifest as manifest_mod
from . import vectors
from .commit import out_path, write_set
from .formats import FORMATS, Artifact, ExportOptions
from .manifest import ArtifactEntry, FileEntry, VectorCaseEntry
from .model import ExportModel

#: The formats an export writes unless told otherwise.
DEFAULT_FORMATS = ("onnx", "torchscript")

#: Upper bound of the golden vectors' size on disk (checked before anything is allocated).
MAX_GOLDEN_BYTES = 1 << 30

#: ``name -> (description, x[time, batch, *features])``: golden-vector cases of the caller's own.
ExtraCases = dict[str, tuple[str, np.ndarray]]


@dataclass
class ExportResult:
    out_dir: Path
    manifest: dict
    kept: list[str] = field(default_factory=list)  # files left in place that no export of ours wrote

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
    """Write ``model`` in every format of ``formats``, its golden vectors and ``manifest.json``.

    ``report`` gets one progress line per file, and lines starting ``note:`` for files left in
    place (see :mod:`.commit`) and for waiting on another export's commit.
    """
    out_dir = out_path(out_dir)
    options = options or ExportOptions()
    report = report or (lambda line: None)
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise InvalidValueError(f"format must be one of {list(FORMATS)}, got {unknown or formats}")
    cases = golden_cases(model.signature())
    check_golden_size(model, cases)
    planned: list[Artifact] = [a for f in formats for a in FORMATS[f](model, options)]

    def build(staging: Path) -> dict:
        total = len(planned) + len(cases) + len(extra_cases or {})
        for i, artifact in enumerate(planned, 1):
            artifact.write(staging)
            artifact.entry["sha256"] = manifest_mod.sha256_file(staging / artifact.entry["file"])
            for companion in artifact.entry.get("companions", []):
                companion["sha256"] = manifest_mod.sha256_file(staging / companion["file"])
            report(progress_line(i, total, staging, artifact.entry))
        written = []
        for j, case in enumerate(cases, len(planned) + 1):
            entry = vectors.write_catalogue_case(model, case, staging / "vectors" / case.name)
            written.append(with_checksums(entry, staging))
            report(f"[{j}/{total}] vectors/{case.name:<20} golden vectors, {case.steps} steps")
        for j, (name, (description, x)) in enumerate((extra_cases or {}).items(), len(planned) + len(cases) + 1):
            x = np.asarray(x)
            states = {s.input: np.zeros(model.state_shape(s, x.shape[1]), model.numpy_dtype) for s in model.states}
            entry = vectors.write_case(model, name, description, x, states, staging / "vectors" / name)
            written.append(with_checksums(entry, staging))
            report(f"[{j}/{total}] vectors/{name:<20} golden vectors, {x.shape[0]} steps x batch {x.shape[1]}")
        return manifest_mod.new_manifest([a.entry for a in planned], written, model.exactness,
                                         **{model.description_key: model.description})

    manifest, kept = write_set(out_dir, build, report)
    return ExportResult(out_dir, manifest, kept)


def with_checksums(entry: VectorCaseEntry, folder: Path) -> VectorCaseEntry:
    """A golden-vector case entry with every file of its folder (``.pb`` and ``.npy``) and its sha256."""
    files: list[FileEntry] = [{"file": f"{entry['dir']}/{p.name}", "sha256": manifest_mod.sha256_file(p)}
                              for p in sorted((folder / entry["dir"]).iterdir())]
    return {**entry, "files": files}


def check_golden_size(model: ExportModel, cases: list[Case]) -> None:
    """Refuse, before anything is allocated, a model whose golden vectors would exceed
    :data:`MAX_GOLDEN_BYTES`: each case holds ``x``, the output and every state's trace
    ``[steps, batch, ...]`` (plus the initial and final states), once as ``.pb`` and once as ``.npy``."""

    def per_sample(dims: list) -> int:
        return prod(d if isinstance(d, int) else DYNAMIC_SIZE for d in dims[1:])

    step = per_sample(model.x_dims) + per_sample(model.out_dims) + sum(per_sample(s.dims) for s in model.states)
    states = sum(per_sample(s.dims) for s in model.states)
    size = sum(c.batch * (c.steps * step + 2 * states) for c in cases) * model.numpy_dtype.itemsize * 2
    if size > MAX_GOLDEN_BYTES:
        raise InvalidValueError(
            f"the golden vectors of this model would take {size / 2**30:,.1f} GiB (x is [time, batch, "
            f"{', '.join(map(str, model.x_dims[1:]))}]), more than the {MAX_GOLDEN_BYTES >> 30} GiB allowed: "
            "export fewer features")


def progress_line(index: int, total: int, staging: Path, entry: ArtifactEntry) -> str:
    size = (staging / entry["file"]).stat().st_size
    return (f"[{index}/{total}] {entry['file']:<22} {entry['format']:<11} {entry['kind']:<16} "
            f"{size / 1024:7.1f} KiB  sha256 {entry['sha256'][:12]}")
