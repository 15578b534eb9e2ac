"""Streaming one step at a time through onnxruntime with bound inputs and outputs.

:class:`OnnxStepStream` owns the state of an exported step graph and keeps
every input and output bound to fixed NumPy buffers between steps (an
``IOBinding`` per parity, the state ping-ponging between two buffers), so a
step costs one ``run_with_iobinding`` call and one copy of the input: no
per-call allocation, name lookup or output conversion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..errors import InvalidTypeError, InvalidValueError
from ..export.manifest import find_artifact, load_manifest
from .ort_session import make_session


class OnnxStepStream:
    """Drive ``lif_step.onnx`` (or any step artifact in a manifest) one step at a time.

    Args:
        models_dir: a folder written by ``lif-export export``.
        shape: the concrete step shape ``[batch, *features]`` (dynamic dims filled in).
        artifact: manifest name of the step graph.
        threads: onnxruntime intra-op threads.

    Example::

        stream = OnnxStepStream("models", shape=(1, 128))
        for x in frames:                    # x: float32 [1, 128]
            spike = stream.step(x)          # a view, overwritten by the next step
        v = stream.state("v")               # copy of the current state
        stream.reset()                      # back to the manifest's initial values
    """

    def __init__(self, models_dir: str | Path, shape: tuple[int, ...], artifact: str = "onnx_step", threads: int = 1,
                 manifest: dict | None = None):
        models_dir = Path(models_dir)
        entry = find_artifact(manifest if manifest is not None else load_manifest(models_dir), artifact)
        if entry["kind"] != "step" or entry["format"] != "onnx":
            raise InvalidValueError(
                f"artifact must be an ONNX step graph, got {artifact!r} ({entry['format']} {entry['kind']})"
            )
        shape = tuple(int(d) for d in shape)
        for tensor in entry["inputs"]:
            dims = tensor["shape"]
            if len(dims) != len(shape) or any(isinstance(d, int) and d != s for d, s in zip(dims, shape, strict=True)):
                raise InvalidValueError(f"shape must fit {tensor['name']}'s {dims}, got {list(shape)}")
        self.session = make_session(models_dir / entry["file"], "all", threads)
        self._states = entry["state"]
        state_inputs = {s["input"] for s in self._states}
        state_outputs = {s["output"] for s in self._states}
        dtype = np.dtype(entry["inputs"][0]["dtype"])
        # Two buffers per state, one set of bindings per parity: step t reads buffer t%2, writes the other.
        self._state_buffers = {s["input"]: [np.zeros(shape, dtype), np.zeros(shape, dtype)] for s in self._states}
        self.inputs = {t["name"]: np.zeros(shape, dtype) for t in entry["inputs"] if t["name"] not in state_inputs}
        self.outputs = {t["name"]: np.zeros(shape, dtype) for t in entry["outputs"] if t["name"] not in state_outputs}
        values = {name: ort.OrtValue.ortvalue_from_numpy(a) for name, a in {**self.inputs, **self.outputs}.items()}
        state_values = {
            n: [ort.OrtValue.ortvalue_from_numpy(b) for b in bufs] for n, bufs in self._state_buffers.items()
        }
        self._bindings = []
        for parity in (0, 1):
            binding = self.session.io_binding()
            for name in self.inputs:
                binding.bind_ortvalue_input(name, values[name])
            for name in self.outputs:
                binding.bind_ortvalue_output(name, values[name])
            for s in self._states:
                binding.bind_ortvalue_input(s["input"], state_values[s["input"]][parity])
                binding.bind_ortvalue_output(s["output"], state_values[s["input"]][1 - parity])
            self._bindings.append(binding)
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise InvalidValueError(f"a step graph with one input and one output besides its state is expected, got "
                             f"inputs {list(self.inputs)} and outputs {list(self.outputs)}")
        # Hot-path references, looked up once.
        self._x = next(iter(self.inputs.values()))
        self._out = next(iter(self.outputs.values()))
        self._run = self.session.run_with_iobinding
        self.reset()

    def reset(self, **states: np.ndarray) -> None:
        """Set every state to the manifest's initial value, or to the arrays given by name."""
        unknown = sorted(set(states) - set(self._state_buffers))
        if unknown:
            raise InvalidValueError(f"state names must be among {sorted(self._state_buffers)}, got {unknown}")
        for name, value in states.items():
            self._check("state " + name, value)
        self._parity = 0
        for s in self._states:
            buffer = self._state_buffers[s["input"]][0]
            if s["input"] in states:
                buffer[...] = states[s["input"]]
            else:
                buffer.fill(s["initial_value"])

    def state(self, name: str = "v") -> np.ndarray:
        """A copy of the current value of state input ``name``."""
        return self._state_buffers[name][self._parity].copy()

    def _check(self, what: str, value: np.ndarray) -> None:
        # No silent casts: a float64 or integer input would otherwise be rounded into the buffer.
        if not isinstance(value, np.ndarray) or value.dtype != self._x.dtype:
            kind = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise InvalidTypeError(f"{what} must be a numpy array of dtype {self._x.dtype} (the graph's), got {kind}")
        if value.shape != self._x.shape:
            raise InvalidValueError(f"{what} must have shape {list(self._x.shape)}, got {list(value.shape)}")

    def step(self, x: np.ndarray) -> np.ndarray:
        """One time step. Returns the spike buffer (valid until the next step)."""
        if not isinstance(x, np.ndarray) or x.dtype != self._x.dtype or x.shape != self._x.shape:
            self._check("x", x)
        self._x[...] = x
        self._run(self._bindings[self._parity])
        self._parity ^= 1
        return self._out
