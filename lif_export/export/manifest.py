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

import jsonschema

from .onnx_graphs import SEQUENCE_OUTPUTS, STEP_INPUTS, STEP_OUTPUTS, step_dims
from .spec import NeuronSpec

MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
#: Name of the manifest copy inside an ONNX model's ``metadata_props`` and a
#: TorchScript archive's ``extra/`` files.
EMBEDDED_KEY = "lif_export_manifest.json"


class ManifestError(ValueError):
    """A manifest that is missing, malformed, of an unknown version or out of date."""


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


def _tensors(spec: NeuronSpec, names: tuple[str, ...], time_major: tuple[str, ...]) -> list[dict]:
    dims = step_dims(spec)
    return [
        {"name": n, "dtype": spec.dtype, "shape": (["time", *dims] if n in time_major else dims)}
        for n in names
    ]


def artifact_entries(spec: NeuronSpec, opset: int) -> list[dict]:
    """The artifacts an export writes, described without their checksums."""
    # "trace" names the golden-vector tensor holding this state after every step.
    state = [{"input": "v", "output": "v_next", "trace": "v_trace", "initial_value": 0.0}]
    step_io = {
        "inputs": _tensors(spec, STEP_INPUTS, ()),
        "outputs": _tensors(spec, STEP_OUTPUTS, ()),
        "state": state,
        "neuron": spec.to_json(),
    }
    seq_io = {
        "inputs": _tensors(spec, STEP_INPUTS, ("x",)),
        "outputs": _tensors(spec, SEQUENCE_OUTPUTS, ("spike", "v_trace")),
        "state": state,
        "neuron": spec.to_json(),
    }
    return [
        {"name": "onnx_step", "file": "lif_step.onnx", "format": "onnx", "kind": "step",
         "method": "run", "opset": opset, **step_io},
        {"name": "onnx_sequence", "file": "lif_sequence.onnx", "format": "onnx", "kind": "sequence",
         "method": "run", "opset": opset, **seq_io},
        {"name": "torchscript_step", "file": "lif_step.pt", "format": "torchscript", "kind": "step",
         "method": "forward", **step_io},
        {"name": "torchscript_sequence", "file": "lif_sequence.pt", "format": "torchscript",
         "kind": "sequence", "method": "forward_trace", **seq_io},
        {"name": "torchscript_neuron", "file": "lif_neuron.pt", "format": "torchscript",
         "kind": "stateful_neuron", "method": "step", **step_io,
         "extra_methods": {
             "forward": {"inputs": ["input_current"], "outputs": ["spike"],
                         "hidden_state": ["potential", "spike"]},
             "reset_state": {"inputs": [], "outputs": []},
         }},
    ]


def new_manifest(artifacts: list[dict], vectors: list[dict], **model: dict) -> dict:
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


def find_artifact(manifest: dict, name: str) -> dict:
    for entry in manifest["artifacts"]:
        if entry["name"] == name:
            return entry
    names = [e["name"] for e in manifest["artifacts"]]
    raise ManifestError(f"artifact {name!r} is not in the manifest (it has {names})")
