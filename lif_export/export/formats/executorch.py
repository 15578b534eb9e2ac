"""The ExecuTorch format: ``.pte`` programs of the step, on ExecuTorch's CPU kernels and delegated to XNNPACK.

The step is traced with ``torch.export`` through the pt2 format's
:class:`~lif_export.export.formats.pt2.FlatStep` (one tensor argument per state), lowered with
``executorch.exir.to_edge`` and serialised with ``to_executorch``; the ATen operations are the ones
eager PyTorch runs (``mul`` then ``add``, ``gt``, ``where``), so nothing is fused::

    <prefix>_step.pte           forward(x[batch, *F], *states) -> (output, *next states)   no delegate
    <prefix>_step_xnnpack.pte   the same, with every operation XNNPACK takes delegated to it

A program without a delegate runs on the kernel library the runtime registers: the executorch wheel
(Python and C++ alike) registers its optimized CPU kernels (``opt_mul_out``, ``opt_add_out``,
``opt_where_out``), with the portable kernels for the other operators (``gt``).

ExecuTorch plans all memory ahead of time, so each named dim has an upper bound (``batch`` up to
:data:`MAX_BATCH`, a neuron's dynamic feature dims up to :data:`MAX_FEATURES`), recorded in the
manifest entry as ``"dim_max"``; a larger input is refused by the runtime.

Each written program is run at export through ``executorch.runtime`` on the input cases
(:mod:`.selfcheck`); a difference is recorded as the entry's ``"deviation"`` and reported again by
``lif-export verify``. Measured with executorch 1.5.1: the program without a delegate is bit-identical on
every case; XNNPACK flushes subnormals to zero, because its operator runner always sets
``PTHREADPOOL_FLAG_DISABLE_DENORMALS`` (no option turns that off), so a float32 subnormal state
or result becomes ``+0.0`` (the ``subnormal`` case of a neuron, a decaying adaptation current of a
network in the ``long`` case). float64 is not delegated (XNNPACK has no float64 kernels).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch
from torch.export import Dim, ExportedProgram

from ...errors import InvalidTypeError
from ..manifest import ArtifactEntry
from ..model import ExportModel
from .base import Artifact, ExportOptions, model_io
from .pt2 import FlatStep

#: Upper bounds of the named dims (ExecuTorch plans memory for the largest shape).
MAX_BATCH = 256
MAX_FEATURES = 4096
#: Example sizes when tracing: distinct, and none 0 or 1 (torch.export specialises those).
EXAMPLE_BATCH, EXAMPLE_FEATURES = 2, 3

INSTALL_HINT = "pip install 'lif_export[executorch]'"


def require_executorch() -> None:
    """Raise an ``ImportError`` with the install command when the ``executorch`` package is missing."""
    try:
        import executorch.exir  # noqa: F401
    except ImportError as err:
        raise ImportError(f"the executorch format needs the executorch package: {INSTALL_HINT} ({err})") from err


def dim_bounds(model: ExportModel) -> dict[str, int]:
    """Upper bound of every named dim of the model's inputs: ``batch`` and dynamic feature dims."""
    names = [d for dims in (model.x_dims, *(s.dims for s in model.states)) for d in dims if isinstance(d, str)]
    return {name: MAX_BATCH if name == "batch" else MAX_FEATURES for name in dict.fromkeys(names)}


def export_step(model: ExportModel) -> ExportedProgram:
    """The step's ExportedProgram with bounded dynamic dims; raises ``TypeError`` naming the layers
    when ``torch.export`` cannot trace them."""
    bounds = dim_bounds(model)
    dims = {name: Dim(re.sub(r"\W", "_", name), min=1, max=bound) for name, bound in bounds.items()}
    sizes = {name: EXAMPLE_BATCH if name == "batch" else EXAMPLE_FEATURES + i for i, name in enumerate(bounds)}

    def example(named: list) -> tuple[torch.Tensor, dict[int, Dim]]:
        shape = [d if isinstance(d, int) else sizes[d] for d in named]
        return (torch.zeros(shape, dtype=model.torch_dtype),
                {axis: dims[d] for axis, d in enumerate(named) if isinstance(d, str)})

    x, x_dims = example(model.x_dims)
    states = [example(s.dims) for s in model.states]
    try:
        with torch.no_grad():
            return torch.export.export(FlatStep(model), (x, *(t for t, _ in states)),
                                       dynamic_shapes=(x_dims, tuple(d for _, d in states)))
    except Exception as err:  # any tracing failure is a refusal to export
        layers = [type(layer).__name__ for layer, _ in model.layers]
        raise InvalidTypeError(f"cannot export the step of layers {layers} to ExecuTorch: "
                        f"{str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}") from err


def cpu_program(program: ExportedProgram) -> bytes:
    """The ``.pte`` bytes of ``program`` without a delegate (ExecuTorch's CPU kernels)."""
    from executorch.exir import to_edge

    return to_edge(program).to_executorch().buffer


def xnnpack_program(program: ExportedProgram) -> bytes:
    """The ``.pte`` bytes of ``program`` with every operation XNNPACK takes delegated to it."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer


#: artifact name -> (file suffix, lower(program) -> .pte bytes)
LOWERINGS: dict[str, tuple[str, Callable[[ExportedProgram], bytes]]] = {
    "executorch_step": ("", cpu_program),
    "executorch_xnnpack_step": ("_xnnpack", xnnpack_program),
}


def _writer(model: ExportModel, program: ExportedProgram, entry: ArtifactEntry,
            lower: Callable[[ExportedProgram], bytes]) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        (folder / entry["file"]).write_bytes(lower(program))
        from ...backends.executorch import ExecutorchStep
        from .selfcheck import record_deviation

        record_deviation(model, ExecutorchStep(entry, folder / entry["file"]), entry)

    return write


def artifacts(model: ExportModel, options: ExportOptions) -> list[Artifact]:
    """``<prefix>_step.pte`` (no delegate) and ``<prefix>_step_xnnpack.pte``; traced here, lowered when written."""
    require_executorch()
    program = export_step(model)
    planned = []
    for name, (suffix, lower) in LOWERINGS.items():
        entry: ArtifactEntry = {"name": name, "file": f"{model.prefix}_step{suffix}.pte", "format": "executorch",
                                "kind": "step", "method": "forward", "calling_convention": "flat",
                                "dim_max": dim_bounds(model), **model_io(model, False)}
        planned.append(Artifact(entry, _writer(model, program, entry, lower)))
    return planned
