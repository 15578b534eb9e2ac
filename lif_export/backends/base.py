"""The one small interface every backend implements, and the backend registry.

A backend runs a whole input sequence ``x[T, batch, ...]`` from initial states given by name and
returns named tensors: the primary output (``spike``, or a network's ``out``) ``[T, ...]`` first,
then each state's trace ``[T, ...]`` and its final value, named as the manifest's state entries
(``v_trace``/``v_next``, ``state.1.v_trace``/``state.1.v_next``, ...). How it does that (one call
per step, one sequence call, chunks with the state carried) is the backend's business; the
conformance checker compares the results bit for bit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cases import Signature
from ..export.manifest import ArtifactEntry, find_artifact

#: Tensors by manifest name.
Tensors = dict[str, np.ndarray]


class Backend(ABC):
    """Runs ``x[T, batch, ...]`` from the initial states (by state input name)."""

    #: Short unique name, e.g. ``"onnxruntime/step/opt=all/threads=2"``.
    name: str

    @abstractmethod
    def run(self, x: np.ndarray, states: Tensors) -> Tensors: ...


@dataclass(frozen=True)
class Context:
    """What a backend factory may use: the models folder and its validated manifest."""

    models_dir: Path
    manifest: dict
    full: bool = False  # include every variation (verify --full)
    unusable: frozenset[str] = frozenset()  # artifacts that failed their checksum: never loaded

    def usable(self, name: str) -> bool:
        return name not in self.unusable and any(a["name"] == name for a in self.manifest["artifacts"])

    @property
    def is_network(self) -> bool:
        return "network" in self.manifest

    def entry(self, name: str) -> ArtifactEntry:
        return find_artifact(self.manifest, name)

    def artifact(self, name: str) -> Path:
        return self.models_dir / self.entry(name)["file"]

    def signature(self) -> Signature:
        """The model's input names and shapes, from its step artifact."""
        step = next(a for a in self.manifest["artifacts"] if a["kind"] == "step")
        params = {}
        if "neuron" in self.manifest:
            from ..export.spec import NeuronSpec

            params = NeuronSpec.from_json(self.manifest["neuron"]).numpy_params()
        return Signature(step["inputs"][0]["dtype"], step["inputs"][0]["shape"],
                         {t["name"]: t["shape"] for t in step["inputs"][1:]}, "neuron" in self.manifest, params)


Factory = Callable[[Context], Iterator[Backend]]

#: Backend family name -> factory yielding its variants. Families register themselves on import.
REGISTRY: dict[str, Factory] = {}


def register(family: str) -> Callable[[Factory], Factory]:
    def decorate(factory: Factory) -> Factory:
        REGISTRY[family] = factory
        return factory

    return decorate


def chunk_bounds(steps: int, chunks: tuple[int, ...] = (1, 7, 50)) -> list[tuple[int, int]]:
    """Uneven chunk boundaries covering ``[0, steps)``, cycling through ``chunks`` sizes."""
    bounds, start, i = [], 0, 0
    while start < steps:
        end = min(steps, start + chunks[i % len(chunks)])
        bounds.append((start, end))
        start, i = end, i + 1
    return bounds


def neuron_result(spike: np.ndarray, v_next: np.ndarray, v_trace: np.ndarray) -> Tensors:
    """A single neuron's run by name."""
    return {"spike": spike, "v_trace": v_trace, "v_next": v_next}


class StepCollector:
    """Collects a run's outputs chunk by chunk (a step is a chunk of one) into :data:`Tensors`."""

    def __init__(self, entry: ArtifactEntry, x: np.ndarray, states: Tensors) -> None:
        self.output = entry["outputs"][0]["name"]
        dims = [d for d in entry["outputs"][0]["shape"] if d != "time"]
        # Named dims are x's (batch, or a neuron's dynamic features, which the output shares).
        self.out_shape = tuple(x.shape[1 + i] if isinstance(d, str) else d for i, d in enumerate(dims))
        self.state_entries = entry["state"]
        self.x = x
        self.initial = states
        self.outs: list[np.ndarray] = []
        self.traces: dict[str, list[np.ndarray]] = {s["trace"]: [] for s in self.state_entries}

    def add(self, out: np.ndarray, traces: list[np.ndarray]) -> None:
        """``out`` and every state's trace, each ``[chunk, ...]``, in the manifest's state order."""
        self.outs.append(out)
        for s, trace in zip(self.state_entries, traces, strict=True):
            self.traces[s["trace"]].append(trace)

    def result(self, finals: list[np.ndarray]) -> Tensors:
        out = np.concatenate(self.outs) if self.outs else np.empty((0, *self.out_shape), self.x.dtype)
        named = {self.output: out}
        for s in self.state_entries:
            parts = self.traces[s["trace"]]
            named[s["trace"]] = np.concatenate(parts) if parts else np.empty((0, *self.initial[s["input"]].shape),
                                                                             self.x.dtype)
        named.update({s["output"]: f for s, f in zip(self.state_entries, finals, strict=True)})
        return named
