"""The model manifest: ``models/manifest.json`` and the copy embedded in each artifact.

A host drives any exported model from the manifest alone: file, checksum,
input/output names with dtypes and shapes (dynamic dims named), which output
feeds which state input and its initial value, the neuron's parameters, and
the versions that wrote it. ``manifest.schema.json`` is the JSON Schema;
:func:`load_manifest` validates against it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import jsonschema

from ..errors import InvalidValueError

MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
#: Name of the manifest copy inside an ONNX model's ``metadata_props`` and a
#: TorchScript archive's ``extra/`` files.
EMBEDDED_KEY = "lif_export_manifest.json"
#: The tiers of an export (``"exactness"``): ``exact``, every result bit-identical on every backend;
#: ``float``, ordinary float layers too (docs/networks.md, "Float tier"), judged within tolerances.
EXACTNESS = ("exact", "float")


class ManifestError(InvalidValueError):
    """A manifest that is missing, malformed, of an unknown version or out of date."""


class FileEntry(TypedDict):
    """A file of the set and its checksum; ``file`` is relative to the models folder."""

    file: str
    sha256: str


class TensorEntry(TypedDict):
    name: str
    dtype: str
    shape: list[int | str]


class StateEntry(TypedDict):
    input: str
    output: str
    trace: str
    initial_value: float


class ArtifactEntry(TypedDict):
    """One exported file (``manifest.schema.json``, ``$defs/artifact``)."""

    name: str
    file: str
    format: str
    kind: str
    method: str
    calling_convention: str
    inputs: list[TensorEntry]
    outputs: list[TensorEntry]
    state: list[StateEntry]
    sha256: NotRequired[str]
    companions: NotRequired[list[FileEntry]]  # files written beside ``file`` (a header, weights)
    opset: NotRequired[int]
    neuron: NotRequired[dict[str, Any]]
    network: NotRequired[dict[str, Any]]
    extra_methods: NotRequired[dict[str, Any]]
    dim_max: NotRequired[dict[str, int]]  # upper bound of each named dim (ExecuTorch)
    runtime_config: NotRequired[dict[str, str]]  # properties a host compiles the artifact with (OpenVINO)
    deviation: NotRequired[str]  # the first difference from eager PyTorch found at export


class VectorCaseEntry(TypedDict):
    """One golden-vector case folder (``$defs/vector_case``)."""

    case: str
    dir: str
    steps: int
    description: str
    inputs: list[TensorEntry]
    outputs: list[TensorEntry]
    files: NotRequired[list[FileEntry]]  # every file of the case folder (.pb and .npy), with checksums


def schema() -> dict:
    text = resources.files("lif_export.export").joinpath("manifest.schema.json").read_text()
    return json.loads(text)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def generator_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    from .. import __version__

    return {
        "lif_export": __version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def new_manifest(artifacts: list[ArtifactEntry], vectors: list[VectorCaseEntry], exactness: str = "exact",
                 **model: dict) -> dict:
    """A manifest dict; ``model`` is ``neuron=...`` or ``network=...``; ``exactness`` one of :data:`EXACTNESS`."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "generator": generator_versions(),
        "exactness": exactness,
        **model,
        "artifacts": artifacts,
        "vectors": vectors,
    }


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    """The schema's validator, the schema itself checked once."""
    manifest_schema = schema()
    cls = jsonschema.validators.validator_for(manifest_schema)
    cls.check_schema(manifest_schema)
    return cls(manifest_schema)


def exactness(manifest: dict) -> str:
    """The manifest's tier (:data:`EXACTNESS`); manifests written before tiers existed are ``exact``."""
    return manifest.get("exactness", "exact")


def validate(manifest: dict) -> None:
    """Raise :class:`ManifestError` naming the first problem."""
    version = manifest.get("manifest_version") if isinstance(manifest, dict) else None
    if version != MANIFEST_VERSION:
        raise ManifestError(
            f"manifest_version must be {MANIFEST_VERSION} (this lif_export reads only that), got {version!r}"
        )
    err = jsonschema.exceptions.best_match(_validator().iter_errors(manifest))
    if err is not None:
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        described = err.validator == "pattern" and "description" in err.schema
        message = f"{err.instance!r} is not {err.schema['description']}" if described else err.message
        raise ManifestError(f"manifest is invalid at {where}: {message}")


def pinned_folder(models_dir: Path) -> Path:
    """The folder holding the set that ``models_dir/manifest.json`` belongs to, resolved once.

    An export folder's public paths are links through one pointer that an export switches
    (``lif_export.export.commit``); reading every file of this folder instead gives one consistent
    set even if an export commits meanwhile. A folder of plain files is its own set.
    """
    path = Path(models_dir) / MANIFEST_NAME
    return Path(os.path.realpath(path)).parent if path.is_symlink() else Path(models_dir)


def load_manifest(models_dir: Path) -> dict:
    path = Path(models_dir) / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(f"no {MANIFEST_NAME} in {models_dir}: run `lif-export export --out {models_dir}` first")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path} is not valid JSON: {err}") from None
    validate(manifest)
    return manifest


def checked_files(manifest: dict) -> dict[str, str]:
    """Every file the manifest vouches for, ``{path relative to the models folder: sha256}``: each
    artifact, its companions and every golden-vector file (``manifest.json`` itself not included)."""
    files = {}
    for entry in manifest["artifacts"]:
        files[entry["file"]] = entry["sha256"]
        files.update((c["file"], c["sha256"]) for c in entry.get("companions", []))
    for case in manifest["vectors"]:
        files.update((f["file"], f["sha256"]) for f in case.get("files", []))
    return files


def find_artifact(manifest: dict, name: str) -> ArtifactEntry:
    for entry in manifest["artifacts"]:
        if entry["name"] == name:
            return entry
    names = [e["name"] for e in manifest["artifacts"]]
    raise ManifestError(f"artifact {name!r} is not in the manifest (it has {names})")
