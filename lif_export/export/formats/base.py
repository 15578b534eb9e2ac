"""What every format module shares: the artifact it plans, the export options, the manifest I/O.

A format module (``onnx.py``, ``torchscript.py``, ...) exposes one function,
``artifacts(model, options) -> list[Artifact]``: the files it will write for an
:class:`~lif_export.export.model.ExportModel`, each with its manifest entry (checksum left out)
and a ``write(folder)`` that writes it. Planning raises, naming the layer, when the format cannot
express the model, so nothing is written for a model that cannot be exported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, NotRequired, TypedDict, TypeVar

from ...errors import InvalidTypeError
from ..manifest import EMBEDDED_KEY, ArtifactEntry, StateEntry, TensorEntry
from ..model import ExportModel

#: The ONNX opset graphs are built for unless asked otherwise: one every onnxruntime since 1.14 runs.
DEFAULT_OPSET = 17


@dataclass(frozen=True)
class ExportOptions:
    """Options of the formats (each reads those it needs)."""

    opset: int = DEFAULT_OPSET
    c_name: str | None = None  # the C library's name (c format); None: "lif" for a neuron, "net" for a network


@dataclass
class Artifact:
    entry: ArtifactEntry  # the manifest entry, without "sha256" until written
    write: Callable[[Path], None]  # writes entry["file"] into the given folder


class ModelIO(TypedDict):
    """The part of an artifact's manifest entry that describes the model's tensors."""

    inputs: list[TensorEntry]
    outputs: list[TensorEntry]
    state: list[StateEntry]
    neuron: NotRequired[dict[str, Any]]
    network: NotRequired[dict[str, Any]]


def tensor(name: str, dtype: str, dims: list, time: bool = False) -> TensorEntry:
    return {"name": name, "dtype": dtype, "shape": (["time", *dims] if time else list(dims))}


def model_io(model: ExportModel, sequence: bool) -> ModelIO:
    """Inputs, outputs, state pairs and the model's description for a step or a sequence artifact.

    Step: ``(x, *states) -> (output, *next states)``. Sequence: ``(x[time], *states) ->
    (output[time], *final states, *traces[time])``.
    """
    d = model.dtype
    inputs = [tensor("x", d, model.x_dims, sequence), *(tensor(s.input, d, s.dims) for s in model.states)]
    outputs = [tensor(model.output, d, model.out_dims, sequence), *(tensor(s.output, d, s.dims) for s in model.states)]
    if sequence:
        outputs += [tensor(s.trace, d, s.dims, True) for s in model.states]
    io: ModelIO = {"inputs": inputs, "outputs": outputs, "state": [s.manifest_entry() for s in model.states]}
    if model.description_key == "neuron":
        io["neuron"] = model.description
    else:
        io["network"] = model.description
    return io


def embedded_manifest(entry: ArtifactEntry) -> str:
    """An artifact's manifest entry without its own checksum, as embedded in the artifact."""
    return json.dumps({k: v for k, v in entry.items() if k != "sha256"})


def embedded_metadata(entry: ArtifactEntry) -> dict[str, str]:
    return {EMBEDDED_KEY: embedded_manifest(entry)}


Emitter = TypeVar("Emitter", bound=Callable[..., Any])


class LayerRegistry(dict[type, Emitter], Generic[Emitter]):
    """A format's ``{layer type -> emitter}``, filled with the :meth:`register` decorator.

    :meth:`emitter_for` finds a layer's emitter by its type or nearest registered base class, and
    refuses any other layer with one error naming the layer, the format and what it can express.
    """

    def __init__(self, target: str, why: str = "") -> None:
        super().__init__()
        self.target = target  # "ONNX", "C", "NIR": for the refusal
        self.why = why  # why other layers are refused, appended to it

    def register(self, *types: type) -> Callable[[Emitter], Emitter]:
        def decorate(fn: Emitter) -> Emitter:
            for t in types:
                self[t] = fn
            return fn

        return decorate

    def emitter_for(self, layer: object) -> Emitter:
        for cls in type(layer).__mro__:
            if cls in self:
                return self[cls]
        names = ", ".join(sorted({t.__name__ for t in self}))
        raise InvalidTypeError(f"cannot export {type(layer).__name__} to {self.target}: only {names} are exported"
                               + (f" ({self.why})" if self.why else ""))
