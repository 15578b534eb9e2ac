"""The model manifest: ``models/manifest.json`` and the copy embedded in each artifact.

A host drives any exported model from the manifest alone: file, checksum,
input/output names with dtypes and shapes (dynamic dims named), which output
feeds which state input and its initial value, the neuron's parameters, and
the versions that wrote it. ``manifest.schema.json`` is the JSON Schema;
:func:`load_manifest` validates against it.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import jsonschema

MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
#: Name of the manifest copy inside an ONNX model's ``metadata_props`` and a
#: TorchScript archive's ``extra/`` files.
EMBEDDED_KEY = "lif_export_manifest.json"


class ManifestError(ValueError):
    """A manifest that is missing, malformed, of an unknown version or out of date."""


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
    opset: NotRequired[int]
    neuron: NotRequired[dict[str, Any]]
    network: NotRequired[dict[str, Any]]
    extra_methods: NotRequired[dict[str, Any]]


class VectorCaseEntry(TypedDict):
    """One golden-vector case folder (``$defs/vector_case``)."""

    case: str
    dir: str
    steps: int
    description: str
    inputs: list[TensorEntry]
    outputs: list[TensorEntry]


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


def new_manifest(artifacts: list[ArtifactEntry], vectors: list[VectorCaseEntry], **model: dict) -> dict:
    """A manifest dict; ``model`` is ``neuron=...`` or ``network=...``."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "generator": generator_versions(),
        **model,
        "artifacts": artifacts,
        "vectors": vectors,
    }


def validate(manifest: dict) -> None:
    """Raise :class:`ManifestError` naming the first problem."""
    version = manifest.get("manifest_version") if isinstance(manifest, dict) else None
    if version != MANIFEST_VERSION:
        raise ManifestError(
            f"manifest_version must be {MANIFEST_VERSION} (this lif_export reads only that), got {version!r}"
        )
    try:
        jsonschema.validate(manifest, schema())
    except jsonschema.ValidationError as err:
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ManifestError(f"manifest is invalid at {where}: {err.message}") from None


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


def find_artifact(manifest: dict, name: str) -> ArtifactEntry:
    for entry in manifest["artifacts"]:
        if entry["name"] == name:
            return entry
    names = [e["name"] for e in manifest["artifacts"]]
    raise ManifestError(f"artifact {name!r} is not in the manifest (it has {names})")
