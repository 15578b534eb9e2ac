"""ExecuTorch: the ``.pte`` step programs run through ``executorch.runtime``, once per time step.

Two programs of one step (see :mod:`lif_export.export.formats.executorch`): ExecuTorch's CPU kernels,
no delegate (``executorch/step``) and the XNNPACK delegate (``executorch/xnnpack_step``), both called
``forward(x, *states) -> (output, *next states)`` with the manifest's state order. An artifact whose
export recorded a ``"deviation"`` still runs, so that verify shows the difference case by case.
The ``executorch`` package is imported only when a manifest has an ExecuTorch artifact; without
it, each such backend raises an ``ImportError`` naming the install command.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..export.manifest import ArtifactEntry
from .base import Backend, Context, StepCollector, Tensors, register

INSTALL_HINT = "pip install 'lif_export[executorch]'"


class ExecutorchStep(Backend):
    """A step program, loaded fresh from ``path``."""

    def __init__(self, entry: ArtifactEntry, path: Path) -> None:
        from executorch.runtime import Runtime  # the optional dependency, loaded only when used

        self.entry = entry
        self.method = Runtime.get().load_program(str(path)).load_method(entry["method"])
        self.name = f"executorch/{entry['name'].removeprefix('executorch_')}"

    def run(self, x: np.ndarray, states: Tensors) -> Tensors:
        collect = StepCollector(self.entry, x, states)
        state = [torch.from_numpy(np.ascontiguousarray(states[s["input"]])) for s in self.entry["state"]]
        for x_t in torch.from_numpy(np.ascontiguousarray(x)):
            # The results live in the program's planned memory, which the next call reuses: copies.
            out, *state = (t.clone() for t in self.method.execute([x_t, *state]))
            collect.add(out.numpy()[None], [s.numpy()[None] for s in state])
        return collect.result([s.numpy() for s in state])


class Unavailable(Backend):
    """Stands in for an artifact whose runtime is not installed: every run raises, naming the fix."""

    def __init__(self, name: str, error: ImportError, hint: str = INSTALL_HINT) -> None:
        self.name = name
        self.error = error
        self.hint = hint

    def run(self, x: np.ndarray, states: Tensors) -> Tensors:
        raise ImportError(f"{self.error}; install it with {self.hint}")


@register("executorch")
def variants(ctx: Context) -> Iterator[Backend]:
    for entry in ctx.manifest["artifacts"]:
        if entry["format"] == "executorch" and ctx.usable(entry["name"]):
            try:
                yield ExecutorchStep(entry, ctx.models_dir / entry["file"])
            except ImportError as err:
                yield Unavailable(f"executorch/{entry['name'].removeprefix('executorch_')}", err)
