"""The one small interface every backend implements, and the backend registry.

A backend runs a whole input sequence from an initial state and returns the
spikes, the final state and the state after every step, as NumPy arrays. How
it does that (one graph call per step, one sequence call, chunks with the
state carried) is the backend's business; the conformance checker compares
the results bit for bit.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class RunResult:
    """A single neuron's run."""

    spike: np.ndarray  # [T, batch, *F]
    v_next: np.ndarray  # [batch, *F]
    v_trace: np.ndarray  # [T, batch, *F]

    def tensors(self) -> dict[str, np.ndarray]:
        """By manifest name: the primary output first, time-major tensors, ``*_next`` final states."""
        return {"spike": self.spike, "v_trace": self.v_trace, "v_next": self.v_next}


@dataclass
class TensorRun:
    """Any model's run, by manifest tensor name (a network's ``out``, ``state.1.v_next``, ``state.1.v_trace``...)."""

    named: dict[str, np.ndarray]

    def tensors(self) -> dict[str, np.ndarray]:
        return self.named


class Backend(ABC):
    """Runs ``x[T, batch, *F]`` from ``v0[batch, *F]``."""

    #: Short unique name, e.g. ``"onnxruntime/step/opt=all/threads=2"``.
    name: str

    @abstractmethod
    def run(self, x: np.ndarray, v0: np.ndarray) -> RunResult: ...


class NetworkBackend(ABC):
    """Runs a network: ``x[T, batch, ...]`` from initial states given by name."""

    name: str

    @abstractmethod
    def run(self, x: np.ndarray, states: dict[str, np.ndarray]) -> TensorRun: ...


@dataclass(frozen=True)
class Context:
    """What a backend factory may use: the models folder and its validated manifest."""

    models_dir: Path
    manifest: dict
    full: bool = False  # include every variation (verify --full)
    unusable: frozenset[str] = frozenset()  # artifacts that failed their checksum: never loaded

    def usable(self, name: str) -> bool:
        return name not in self.unusable

    @property
    def is_network(self) -> bool:
        return "network" in self.manifest

    def artifact(self, name: str) -> Path:
        from ..export.manifest import find_artifact

        return self.models_dir / find_artifact(self.manifest, name)["file"]


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


def torch_step_loop(step: Callable, x: np.ndarray, v0: np.ndarray) -> RunResult:
    """Run ``step(x_t, v) -> (spike, v_next)`` (a torch module or method) once per time step."""
    import torch

    spikes, trace, v = [], [], torch.from_numpy(v0)
    with torch.no_grad():
        for t in range(x.shape[0]):
            s, v = step(torch.from_numpy(x[t]), v)
            spikes.append(s.numpy())
            trace.append(v.numpy())
    return stack_steps(spikes, trace, x, v.numpy())


def stack_steps(spikes: list[np.ndarray], trace: list[np.ndarray], x: np.ndarray, v: np.ndarray) -> RunResult:
    """Assemble per-step outputs into a :class:`RunResult` (``T = 0`` included)."""
    if not spikes:
        empty = np.empty_like(x)
        return RunResult(empty, np.broadcast_to(v, x.shape[1:]).copy(), empty.copy())
    return RunResult(np.stack(spikes), v, np.stack(trace))
