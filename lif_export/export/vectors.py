"""Golden vectors: inputs, initial state and eager PyTorch's expected outputs.

Laid out like ONNX's backend test data, one folder per case::

    vectors/<case>/input_0.pb   x        [time, batch, *F]
                   input_1.pb   v        [batch, *F]   (initial state)
                   output_0.pb  spike    [time, batch, *F]
                   output_1.pb  v_next   [batch, *F]   (final state)
                   output_2.pb  v_trace  [time, batch, *F]

The numbering follows the sequence graph's inputs and outputs; each tensor is
also saved as ``<name>.npy``. A step-by-step host feeds ``x[t]`` with the
state and compares against ``spike[t]`` and ``v_trace[t]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from onnx import numpy_helper

from .. import inputs
from .onnx_graphs import SEQUENCE_OUTPUTS, STEP_INPUTS
from .spec import NeuronSpec

BATCH = 4
DYNAMIC_NEURONS = 8


@dataclass(frozen=True)
class VectorCase:
    name: str
    description: str
    steps: int
    make_input: inputs.InputFn


CASES: dict[str, VectorCase] = {
    case.name: case
    for case in [
        VectorCase("random", "normal currents, mean 0.35 theta, sd theta", 100, inputs.random_currents(1.0)),
        VectorCase("constant_low", "constant I with I/(1-beta) = theta/2: never fires", 100,
                   inputs.constant(0.5)),
        VectorCase("constant_high", "constant I with I/(1-beta) = 3 theta: fires periodically", 100,
                   inputs.constant(3.0)),
        VectorCase("near_threshold", "beta*v + x within two ulp of theta at every step", 60,
                   inputs.near_threshold(2)),
        VectorCase("special_values", "random with NaN, +-inf, +-0, subnormals and the largest float",
                   60, inputs.special_values),
    ]
}


def case_input(spec: NeuronSpec, case: VectorCase, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(x[time, batch, *F], v0[batch, *F])`` for a case."""
    shape = (case.steps, *spec.concrete_shape(BATCH, DYNAMIC_NEURONS))
    rng = np.random.default_rng(seed)
    x = np.ascontiguousarray(case.make_input(spec.numpy_params(), shape, spec.numpy_dtype, rng))
    return x, np.zeros(shape[1:], dtype=spec.numpy_dtype)


def expected_outputs(spec: NeuronSpec, x: np.ndarray, v0: np.ndarray) -> dict[str, np.ndarray]:
    """Eager PyTorch's ``spike``, ``v_next`` and ``v_trace`` for the inputs (the functional loop)."""
    spike, v_next, v_trace = spec.reference(torch.from_numpy(x), torch.from_numpy(v0))
    return {"spike": spike.numpy(), "v_next": v_next.numpy(), "v_trace": v_trace.numpy()}


def write_case(spec: NeuronSpec, case: VectorCase, folder: Path) -> dict:
    """Write one case's tensors into ``folder``; return its manifest entry."""
    folder.mkdir(parents=True, exist_ok=True)
    x, v0 = case_input(spec, case)
    tensors = dict(zip(STEP_INPUTS, (x, v0), strict=True))
    outputs = expected_outputs(spec, x, v0)
    for i, name in enumerate(STEP_INPUTS):
        save_tensor(folder, f"input_{i}", name, tensors[name])
    for i, name in enumerate(SEQUENCE_OUTPUTS):
        save_tensor(folder, f"output_{i}", name, outputs[name])
    describe = lambda name, a: {"name": name, "dtype": spec.dtype, "shape": list(a.shape)}  # noqa: E731
    return {
        "case": case.name,
        "dir": f"vectors/{case.name}",
        "steps": case.steps,
        "description": case.description,
        "inputs": [describe(n, tensors[n]) for n in STEP_INPUTS],
        "outputs": [describe(n, outputs[n]) for n in SEQUENCE_OUTPUTS],
    }


def save_tensor(folder: Path, stem: str, name: str, array: np.ndarray) -> None:
    """``<stem>.pb`` (an ONNX TensorProto named ``name``) and ``<name>.npy``."""
    (folder / f"{stem}.pb").write_bytes(numpy_helper.from_array(array, name=name).SerializeToString())
    np.save(folder / f"{name}.npy", array)


def read_case(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(inputs, outputs)`` of a case folder, by tensor name, from its ``input_*.pb``/``output_*.pb`` files."""
    from onnx import TensorProto

    def load(path: Path) -> tuple[str, np.ndarray]:
        proto = TensorProto()
        proto.ParseFromString(path.read_bytes())
        return proto.name, numpy_helper.to_array(proto).copy()  # writable, for torch.from_numpy

    def numbered(prefix: str) -> dict[str, np.ndarray]:
        files = sorted(folder.glob(f"{prefix}_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
        return dict(load(p) for p in files)

    return numbered("input"), numbered("output")
