"""Golden vectors: inputs, initial states and eager PyTorch's outputs for the catalogue's golden cases.

Laid out like ONNX's backend test data, one folder per case, numbered as the sequence graph's
inputs and outputs::

    vectors/<case>/input_0.pb    x                  [time, batch, *F]
                   input_k.pb    the k-th state     [batch, ...]          (initial value)
                   output_0.pb   spike (or out)     [time, batch, ...]
                   output_k.pb   the final states, then every state's trace [time, batch, ...]

Each tensor is also saved as ``<name>.npy``. A step-by-step host feeds ``x[t]`` with the states
and compares against the primary output's and the traces' step ``t``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, numpy_helper

from ..cases import Case
from .manifest import VectorCaseEntry
from .model import ExportModel


def write_case(model: ExportModel, name: str, description: str, x: np.ndarray, states: dict[str, np.ndarray],
               folder: Path) -> VectorCaseEntry:
    """Write one case's inputs and the model's eager outputs into ``folder``; return its manifest entry."""
    folder.mkdir(parents=True, exist_ok=True)
    x = np.ascontiguousarray(np.asarray(x).astype(model.numpy_dtype))
    inputs = {"x": x, **{s.input: states[s.input] for s in model.states}}
    expected = model.reference(x, states)
    outputs = {model.output: expected[model.output], **{s.output: expected[s.output] for s in model.states},
               **{s.trace: expected[s.trace] for s in model.states}}
    for i, (tensor_name, array) in enumerate(inputs.items()):
        save_tensor(folder, f"input_{i}", tensor_name, array)
    for i, (tensor_name, array) in enumerate(outputs.items()):
        save_tensor(folder, f"output_{i}", tensor_name, array)

    def describe(tensor_name: str, array: np.ndarray) -> dict:
        return {"name": tensor_name, "dtype": model.dtype, "shape": list(array.shape)}

    return {
        "case": name, "dir": f"vectors/{name}", "steps": int(x.shape[0]), "description": description,
        "inputs": [describe(n, a) for n, a in inputs.items()],  # type: ignore[misc]
        "outputs": [describe(n, a) for n, a in outputs.items()],  # type: ignore[misc]
    }


def write_catalogue_case(model: ExportModel, case: Case, folder: Path) -> VectorCaseEntry:
    x, states = case.build(model.signature())
    return write_case(model, case.name, case.description, x, states, folder)


def save_tensor(folder: Path, stem: str, name: str, array: np.ndarray) -> None:
    """``<stem>.pb`` (an ONNX TensorProto named ``name``) and ``<name>.npy``."""
    (folder / f"{stem}.pb").write_bytes(numpy_helper.from_array(array, name=name).SerializeToString())
    np.save(folder / f"{name}.npy", array)


def read_case(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(inputs, outputs)`` of a case folder, by tensor name, from its ``input_*.pb``/``output_*.pb`` files."""

    def numbered(prefix: str) -> dict[str, np.ndarray]:
        files = sorted(folder.glob(f"{prefix}_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
        return dict(load_tensor(p) for p in files)

    return numbered("input"), numbered("output")


def load_tensor(path: Path) -> tuple[str, np.ndarray]:
    """``(name, array)`` of one ``.pb`` file (an ONNX TensorProto); the array is writable."""
    proto = TensorProto()
    proto.ParseFromString(path.read_bytes())
    return proto.name, numpy_helper.to_array(proto).copy()  # writable, for torch.from_numpy
