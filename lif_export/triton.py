"""A Triton Inference Server model repository for an exported model's ONNX step graph.

:func:`write_model_repository` reads an export folder (``manifest.json`` and its ``onnx_step``
artifact, checked against its sha256) and writes::

    <out_dir>/<model>/config.pbtxt       onnxruntime backend, sequence batching with implicit state
    <out_dir>/<model>/1/model.onnx       the step graph, plus the sequence control inputs
    <out_dir>/<model>/initial_state/     raw initial values (only for a state whose initial_value is not 0)

Triton keeps every state of a sequence itself (implicit state management): each state pair of the
manifest (``v`` -> ``v_next``, every ``state.<i>.<var>`` of a network) becomes a ``state`` entry of
``sequence_batching``; the output of one request is the state input of the next request of the same
sequence, and the first request of a sequence gets the ``initial_state`` (zeros, or the raw file).
A client sends only ``x`` (``[1, *features]`` per request, one sequence per batch slot) and receives
the primary output (``spike`` or ``out``). Triton's onnxruntime backend requires the control
tensors to be inputs of the model, so ``model.onnx`` is the step graph with two more inputs,
``START`` and ``READY`` (``int32 [batch, 1]``), that no node reads: the arithmetic is the step graph's,
node for node. Triton's onnxruntime backend runs the graph with onnxruntime's full graph
optimisation by default, which ``lif-export verify`` checks bit for bit (``onnxruntime/step/opt=all``).

Only the repository is written and checked (the tests parse ``config.pbtxt`` with tritonclient's
``model_config_pb2`` and compare every field with the manifest); no Triton server is started here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from .errors import InvalidValueError
from .export import manifest as manifest_mod
from .export.manifest import ArtifactEntry

#: Triton data types of the manifest's dtypes.
TRITON_DTYPES = {"float32": "TYPE_FP32", "float64": "TYPE_FP64"}
#: The sequence control inputs added to the graph: name -> Triton control kind.
CONTROLS = {"START": "CONTROL_SEQUENCE_START", "READY": "CONTROL_SEQUENCE_READY"}


class _Enum(str):
    """A protobuf text-format enum value (written unquoted)."""


def _text(value: object, indent: str = "") -> str:
    """A value in protobuf text format: a message (dict), a repeated field (list) or a scalar."""
    if isinstance(value, dict):
        inner = indent + "  "
        lines = [f"{inner}{key}{': ' if not isinstance(v, dict | list) or _scalars(v) else ' '}{_text(v, inner)}"
                 for key, v in value.items()]
        return "{\n" + "\n".join(lines) + f"\n{indent}}}"
    if isinstance(value, list):
        if _scalars(value):
            return "[ " + ", ".join(_text(v) for v in value) + " ]"
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + _text(v, inner) for v in value) + f"\n{indent}]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _Enum | int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _scalars(value: object) -> bool:
    return isinstance(value, list) and not any(isinstance(v, dict | list) for v in value)


def _step_entry(models_dir: Path, manifest: dict) -> ArtifactEntry:
    entry = next((a for a in manifest["artifacts"] if a["name"] == "onnx_step"), None)
    if entry is None:
        raise InvalidValueError(
            f"{models_dir} has no onnx_step artifact: export it with `lif-export export --format onnx`")
    digest = manifest_mod.sha256_file(models_dir / entry["file"])
    if digest != entry["sha256"]:
        raise InvalidValueError(f"{entry['file']}: sha256 {digest[:16]}... does not match the manifest's "
                         f"{entry['sha256'][:16]}... (changed since export)")
    return entry


def _feature_dims(entry: ArtifactEntry, sizes: dict[str, int]) -> dict[str, list[int]]:
    """Every tensor's dims after the batch dim, with named feature dims given their ``sizes``."""
    named = sorted({d for t in entry["inputs"] + entry["outputs"] for d in t["shape"][1:] if isinstance(d, str)})
    missing = [n for n in named if n not in sizes]
    bad = {k: v for k, v in sizes.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}
    if missing or bad:
        raise InvalidValueError(f"feature_sizes must give a positive integer for each named feature dim {named} "
                         f"(Triton allocates a state of a fixed shape), got {sizes!r}")
    return {t["name"]: [sizes[d] if isinstance(d, str) else d for d in t["shape"][1:]]
            for t in entry["inputs"] + entry["outputs"]}


def _with_controls(graph: onnx.ModelProto) -> onnx.ModelProto:
    """The step graph with the (unread) ``START`` and ``READY`` inputs Triton feeds."""
    model = onnx.ModelProto()
    model.CopyFrom(graph)
    for name in CONTROLS:
        model.graph.input.append(helper.make_tensor_value_info(name, TensorProto.INT32, ["batch", 1]))
    onnx.checker.check_model(model, full_check=True)
    return model


def model_config(entry: ArtifactEntry, name: str, dims: dict[str, list[int]], max_batch_size: int,
                 max_sequence_idle_microseconds: int, initial_files: dict[str, str]) -> dict:
    """The ``config.pbtxt`` message as nested dicts (see :func:`write_model_repository`)."""
    dtype = _Enum(TRITON_DTYPES[entry["inputs"][0]["dtype"]])
    x, out = entry["inputs"][0]["name"], entry["outputs"][0]["name"]
    states = []
    for s in entry["state"]:
        initial: dict = {"data_type": dtype, "dims": dims[s["input"]]}
        if s["input"] in initial_files:
            initial["data_file"] = initial_files[s["input"]]
        else:
            initial["zero_data"] = True
        initial["name"] = f"{s['input']} initial"
        states.append({"input_name": s["input"], "output_name": s["output"], "data_type": dtype,
                       "dims": dims[s["input"]], "initial_state": initial})
    return {
        "name": name,
        "backend": "onnxruntime",
        "max_batch_size": max_batch_size,
        "input": [{"name": x, "data_type": dtype, "dims": dims[x]}],
        "output": [{"name": out, "data_type": dtype, "dims": dims[out]}],
        "sequence_batching": {
            "max_sequence_idle_microseconds": max_sequence_idle_microseconds,
            "control_input": [{"name": control, "control": [{"kind": _Enum(kind), "int32_false_true": [0, 1]}]}
                              for control, kind in CONTROLS.items()],
            "state": states,
        },
        "instance_group": [{"kind": _Enum("KIND_CPU"), "count": 1}],
    }


def write_model_repository(
    models_dir: str | Path,
    out_dir: str | Path,
    model_name: str | None = None,
    max_batch_size: int = 8,
    feature_sizes: dict[str, int] | None = None,
    max_sequence_idle_microseconds: int = 60_000_000,
) -> Path:
    """Write a Triton model repository serving the step graph of the export in ``models_dir``.

    Args:
        models_dir: a folder written by ``lif-export export`` with the ``onnx`` format.
        out_dir: the repository root (created if missing); ``<out_dir>/<model_name>/`` is replaced.
        model_name: the model's name in Triton; default the step graph's stem (``lif_step``,
            ``network_step``).
        max_batch_size: how many sequences Triton batches into one step (each request holds one
            sample: ``x[1, *features]``).
        feature_sizes: a size for each named feature dim of the model (a neuron exported with a
            dynamic ``neurons`` dim needs ``{"neurons": N}``), since Triton keeps states of a fixed shape.
        max_sequence_idle_microseconds: how long Triton keeps an idle sequence's state.

    Returns:
        The model folder ``<out_dir>/<model_name>``.

    Raises:
        ManifestError: ``models_dir`` has no valid manifest.
        ValueError: no ``onnx_step`` artifact, a changed file, a missing feature size or a bad argument.

    The repository is only written; starting ``tritonserver --model-repository <out_dir>`` is left to
    the host (no server is run by lif_export or its tests).
    """
    models_dir, out_dir = Path(models_dir), Path(out_dir)
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
        raise InvalidValueError(
            f"max_batch_size must be a positive integer (sequences per batch), got {max_batch_size!r}")
    if isinstance(max_sequence_idle_microseconds, bool) or not isinstance(max_sequence_idle_microseconds, int) \
            or max_sequence_idle_microseconds < 1:
        raise InvalidValueError("max_sequence_idle_microseconds must be a positive integer, "
                         f"got {max_sequence_idle_microseconds!r}")
    manifest = manifest_mod.load_manifest(models_dir)
    entry = _step_entry(models_dir, manifest)
    name = model_name or Path(entry["file"]).stem
    if not name or "/" in name or name.startswith("."):
        raise InvalidValueError(f"model_name must be a plain folder name, got {name!r}")
    dims = _feature_dims(entry, feature_sizes or {})
    graph = _with_controls(onnx.load(str(models_dir / entry["file"])))
    ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])  # loads, or raises here

    folder = out_dir / name
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "1").mkdir(parents=True)
    onnx.save(graph, folder / "1" / "model.onnx")
    initial_files = {}
    for s in entry["state"]:
        if s["initial_value"] != 0:
            file = f"{s['input']}.bin"
            (folder / "initial_state").mkdir(exist_ok=True)
            np.full(dims[s["input"]], s["initial_value"], np.dtype(entry["inputs"][0]["dtype"])).tofile(
                folder / "initial_state" / file)
            initial_files[s["input"]] = file
    config = model_config(entry, name, dims, max_batch_size, max_sequence_idle_microseconds, initial_files)
    body = _text(config)[2:-2]  # the top-level message without its braces
    (folder / "config.pbtxt").write_text("\n".join(line[2:] for line in body.splitlines()) + "\n")
    return folder
