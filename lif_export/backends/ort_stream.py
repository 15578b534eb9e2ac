"""Streaming through onnxruntime with bound inputs and outputs, the state kept between calls.

:class:`OnnxStepStream` drives a step graph one time step at a time and keeps every input and
output bound to fixed NumPy buffers between steps (an ``IOBinding`` per parity, the state
ping-ponging between two buffers), so a step costs one ``run_with_iobinding`` call and one copy
of the input: no per-call allocation, name lookup or output conversion.

:class:`OnnxSequenceStream` drives a sequence graph a chunk of time steps at a time: the chunk's
output is written straight into the caller's array (a slice of a preallocated output, say) and
the traces into a reused scratch buffer, so streaming in chunks costs what one whole-sequence
call costs instead of a new output and a concatenation per chunk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from ..errors import InvalidTypeError, InvalidValueError
from ..export.manifest import find_artifact, load_manifest
from .ort_session import make_session


class _BoundStream:
    """What both streams share: the artifact's session, its state in two buffers each (read one,
    write the other, then swap), ``reset`` and ``state``, and the checks of caller arrays.

    Named dimensions are sized from ``shape`` (a step of ``x``: ``[batch, *features]``), so the
    state and output shapes of neurons and networks alike follow from the manifest."""

    kind = ""

    def __init__(self, models_dir: str | Path, shape: tuple[int, ...], artifact: str, threads: int,
                 manifest: dict | None, session: ort.InferenceSession | None = None):
        models_dir = Path(models_dir)
        entry = find_artifact(manifest if manifest is not None else load_manifest(models_dir), artifact)
        if entry["kind"] != self.kind or entry["format"] != "onnx":
            raise InvalidValueError(f"artifact must be an ONNX {self.kind} graph, got {artifact!r} "
                                    f"({entry['format']} {entry['kind']})")
        x_entry = entry["inputs"][0]
        x_dims = x_entry["shape"][1:] if self.kind == "sequence" else x_entry["shape"]
        shape = tuple(int(d) for d in shape)
        if len(x_dims) != len(shape) or any(isinstance(d, int) and d != s for d, s in zip(x_dims, shape, strict=True)):
            raise InvalidValueError(f"shape must fit {x_entry['name']}'s {x_dims}, got {list(shape)}")
        self._sizes = {d: s for d, s in zip(x_dims, shape, strict=True) if isinstance(d, str)}
        self.session = session if session is not None else make_session(models_dir / entry["file"], "all", threads)
        self.entry = entry
        self.dtype = np.dtype(x_entry["dtype"])
        self.shape = shape
        self._states = entry["state"]
        tensors = {t["name"]: t for t in entry["inputs"]}
        self._state_buffers = {s["input"]: [np.zeros(self._resolve(tensors[s["input"]]["shape"]), self.dtype)
                                            for _ in (0, 1)] for s in self._states}
        self._parity = 0
        self.reset()

    def _resolve(self, dims: list[Any]) -> tuple[int, ...]:
        """A manifest shape with its named dimensions sized like ``x``'s (``time`` left out)."""
        return tuple(self._sizes[d] if isinstance(d, str) else int(d) for d in dims if d != "time")

    def reset(self, **states: np.ndarray) -> None:
        """Set every state to the manifest's initial value, or to the arrays given by name."""
        unknown = sorted(set(states) - set(self._state_buffers))
        if unknown:
            raise InvalidValueError(f"state names must be among {sorted(self._state_buffers)}, got {unknown}")
        for name, value in states.items():
            self._check("state " + name, value, self._state_buffers[name][0].shape)
        self._parity = 0
        for s in self._states:
            buffer = self._state_buffers[s["input"]][0]
            if s["input"] in states:
                buffer[...] = states[s["input"]]
            else:
                buffer.fill(s["initial_value"])

    def state(self, name: str = "v") -> np.ndarray:
        """A copy of the current value of state input ``name``."""
        if name not in self._state_buffers:
            raise InvalidValueError(f"name must be among {sorted(self._state_buffers)}, got {name!r}")
        return self._state_buffers[name][self._parity].copy()

    def _check(self, what: str, value: object, shape: tuple[int, ...], time: bool = False) -> None:
        """``value`` is an array of the graph's dtype and of ``shape`` (after a leading ``time`` dimension
        of any length when ``time``)."""
        # No silent casts: a float64 or integer input would otherwise be rounded into the buffer.
        if not isinstance(value, np.ndarray) or value.dtype != self.dtype:
            kind = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise InvalidTypeError(f"{what} must be a numpy array of dtype {self.dtype} (the graph's), got {kind}")
        if (value.shape[1:] if time else value.shape) != shape or (time and value.ndim == 0):
            shown = ["time", *shape] if time else list(shape)
            raise InvalidValueError(f"{what} must have shape {shown}, got {list(value.shape)}")


class OnnxStepStream(_BoundStream):
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

    kind = "step"

    def __init__(self, models_dir: str | Path, shape: tuple[int, ...], artifact: str = "onnx_step", threads: int = 1,
                 manifest: dict | None = None):
        super().__init__(models_dir, shape, artifact, threads, manifest)
        state_inputs = {s["input"] for s in self._states}
        state_outputs = {s["output"] for s in self._states}
        entry = self.entry
        self.inputs = {t["name"]: np.zeros(self._resolve(t["shape"]), self.dtype) for t in entry["inputs"]
                       if t["name"] not in state_inputs}
        self.outputs = {t["name"]: np.zeros(self._resolve(t["shape"]), self.dtype) for t in entry["outputs"]
                        if t["name"] not in state_outputs}
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise InvalidValueError(f"a step graph with one input and one output besides its state is expected, got "
                                    f"inputs {list(self.inputs)} and outputs {list(self.outputs)}")
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
        # Hot-path references, looked up once.
        self._x = next(iter(self.inputs.values()))
        self._out = next(iter(self.outputs.values()))
        self._run = self.session.run_with_iobinding

    def step(self, x: np.ndarray) -> np.ndarray:
        """One time step of ``x`` (``shape``). Returns the output buffer (valid until the next step)."""
        if not isinstance(x, np.ndarray) or x.dtype != self._x.dtype or x.shape != self._x.shape:
            self._check("x", x, self.shape)
        self._x[...] = x
        self._run(self._bindings[self._parity])
        self._parity ^= 1
        return self._out


class OnnxSequenceStream(_BoundStream):
    """Drive ``lif_sequence.onnx`` (or any ONNX sequence artifact) a chunk of time steps at a time,
    the state carried from one chunk to the next: the same bits as one call on the whole sequence.

    Args:
        models_dir: a folder written by ``lif-export export``.
        shape: the concrete step shape ``[batch, *features]`` of ``x`` (dynamic dims filled in).
        artifact: manifest name of the sequence graph.
        threads: onnxruntime intra-op threads.
        manifest: the folder's manifest, when already loaded.
        session: an ``InferenceSession`` of the artifact to share (else one is made with ``threads``).

    Example::

        stream = OnnxSequenceStream("models", shape=(32, 1024))
        spikes = np.empty((500, 32, 1024), np.float32)
        for start in range(0, 500, 50):     # chunks as they arrive, any lengths
            stream.run(x[start:start + 50], out=spikes[start:start + 50])
        v = stream.state("v")               # copy of the state after the last chunk
    """

    kind = "sequence"

    def __init__(self, models_dir: str | Path, shape: tuple[int, ...], artifact: str = "onnx_sequence",
                 threads: int = 1, manifest: dict | None = None, session: ort.InferenceSession | None = None):
        super().__init__(models_dir, shape, artifact, threads, manifest, session)
        out = self.entry["outputs"][0]
        self.output = out["name"]
        self.out_shape = self._resolve(out["shape"])
        self._scratch: dict[str, np.ndarray] = {}
        #: trace name -> one step's shape (its state's)
        self._trace_shapes = {st["trace"]: self._state_buffers[st["input"]][0].shape for st in self._states}

    def run(self, x: np.ndarray, out: np.ndarray | None = None,
            traces: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """One chunk: ``x [T, *shape]`` -> the output ``[T, *out_shape]``, written into ``out`` when
        given (C-contiguous, the graph's dtype: a time slice of a larger array is), else a new array.

        ``traces``, when given, receives each named state trace (``{"v_trace": [T, ...]}``, names
        from the manifest's state ``trace``); the others go to a scratch buffer that is reused.
        """
        self._check("x", x, self.shape, time=True)
        steps = x.shape[0]
        out = np.empty((steps, *self.out_shape), self.dtype) if out is None else out
        self._check_output("out", out, (steps, *self.out_shape))
        traces = traces or {}
        unknown = sorted(set(traces) - set(self._trace_shapes))
        if unknown:
            raise InvalidValueError(f"traces names must be among {sorted(self._trace_shapes)}, got {unknown}")
        for name, array in traces.items():
            self._check_output(f"traces[{name!r}]", array, (steps, *self._trace_shapes[name]))
        if steps == 0:  # the graph returns the state unchanged; nothing to bind
            return out
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.entry["inputs"][0]["name"], np.ascontiguousarray(x))
        self._bind_output(binding, self.output, out)
        for s in self._states:
            buffers = self._state_buffers[s["input"]]
            binding.bind_cpu_input(s["input"], buffers[self._parity])
            self._bind_output(binding, s["output"], buffers[1 - self._parity])
            trace = traces.get(s["trace"])
            if trace is None:
                trace = self._trace_scratch(s["trace"], steps)
            self._bind_output(binding, s["trace"], trace)
        self.session.run_with_iobinding(binding)
        self._parity ^= 1
        return out

    def _trace_scratch(self, name: str, steps: int) -> np.ndarray:
        """``steps`` time steps of a reused buffer for the trace ``name`` the caller did not ask for."""
        scratch = self._scratch.get(name)
        if scratch is None or scratch.shape[0] < steps:
            scratch = self._scratch[name] = np.empty((steps, *self._trace_shapes[name]), self.dtype)
        return scratch[:steps]

    def _check_output(self, what: str, value: object, shape: tuple[int, ...]) -> None:
        """An array onnxruntime can write into: the dtype and ``shape``, C-contiguous and writeable."""
        self._check(what, value, shape)
        assert isinstance(value, np.ndarray)
        if not (value.flags.c_contiguous and value.flags.writeable):
            raise InvalidValueError(f"{what} must be a writeable C-contiguous array (a time slice of one is)")

    @staticmethod
    def _bind_output(binding: ort.IOBinding, name: str, array: np.ndarray) -> None:
        binding.bind_output(name, "cpu", 0, array.dtype.type, list(array.shape), array.ctypes.data)
