"""OpenVINO: the stateful step IR on the CPU plugin, one ``infer`` per time step.

The IR (see :mod:`lif_export.export.formats.openvino`) takes only ``x``; every state is a variable
of the model. A run starts with ``reset_state()`` (the states' ``initial_value``) when the given
initial states are exactly that, and otherwise sets each state with ``VariableState.set_state``, as
a host would; after each step the primary output and every state are read back. The IR is compiled
with the manifest's ``runtime_config`` (``INFERENCE_PRECISION_HINT=f32``). Variations that must not
change a bit: 1 and 2 inference threads. The ``openvino`` package is imported only when a manifest
has an OpenVINO artifact; without it, each such backend raises an ``ImportError`` naming the
install command.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import InvalidValueError
from ..export.manifest import ArtifactEntry
from .base import Backend, Context, StepCollector, Tensors, register
from .executorch import Unavailable

INSTALL_HINT = "pip install 'lif_export[openvino]'"


class OpenVinoStep(Backend):
    """The IR at ``path``, compiled for the CPU with ``config`` (default: the entry's ``runtime_config``)."""

    def __init__(self, entry: ArtifactEntry, path: Path, threads: int = 1, config: dict | None = None) -> None:
        import openvino as ov  # the optional dependency, loaded only when used

        self.entry = entry
        core = ov.Core()
        model = core.read_model(str(path))
        inputs = {s["input"] for s in entry["state"]}
        #: state input name -> OpenVINO variable id (MakeStateful names the variable; the ReadValue keeps the name)
        self.variables = {name: op.get_variable_id() for op in model.get_ordered_ops()
                          if op.get_type_name() == "ReadValue" for name in op.output(0).get_names() if name in inputs}
        missing = sorted(inputs - set(self.variables))
        if missing:
            raise InvalidValueError(f"{path.name}: no variable for the states {missing} (not a stateful lif_export IR)")
        settings = entry.get("runtime_config", {}) if config is None else config
        self.compiled = core.compile_model(model, "CPU", {**settings, "INFERENCE_NUM_THREADS": threads,
                                                          "NUM_STREAMS": 1})
        self.tensor = ov.Tensor
        label = "default" if config == {} else "f32"
        self.name = f"openvino/step/{label}/threads={threads}"

    def _starts_from_reset(self, states: Tensors) -> bool:
        """Whether every given state is bit for bit its ``initial_value`` (then ``reset_state()`` sets it)."""
        for s in self.entry["state"]:
            given = states[s["input"]]
            if given.tobytes() != np.full_like(given, s["initial_value"]).tobytes():
                return False
        return True

    def run(self, x: np.ndarray, states: Tensors) -> Tensors:
        collect = StepCollector(self.entry, x, states)
        request = self.compiled.create_infer_request()
        request.reset_state()
        handles = {v.name: v for v in request.query_state()}
        variables = [handles[self.variables[s["input"]]] for s in self.entry["state"]]
        if not self._starts_from_reset(states):
            for s, variable in zip(self.entry["state"], variables, strict=True):
                variable.state = self.tensor(np.ascontiguousarray(states[s["input"]]))
        finals = [states[s["input"]] for s in self.entry["state"]]
        for x_t in x:
            out = request.infer({"x": np.ascontiguousarray(x_t)})[0]
            finals = [v.state.data.copy() for v in variables]
            collect.add(np.array(out)[None], [f[None] for f in finals])
        return collect.result(finals)


@register("openvino")
def variants(ctx: Context) -> Iterator[Backend]:
    for entry in ctx.manifest["artifacts"]:
        if entry["format"] == "openvino" and ctx.usable(entry["name"]):
            for threads in (1, 2) if ctx.full else (1,):
                try:
                    yield OpenVinoStep(entry, ctx.models_dir / entry["file"], threads)
                except ImportError as err:
                    yield Unavailable(f"openvino/step/f32/threads={threads}", err, INSTALL_HINT)
