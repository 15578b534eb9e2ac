"""The torch.export format (``pt2``): ExportedPrograms of the step and of the whole sequence.

Like TorchScript, this format needs no per-layer emitter: ``torch.export`` traces each layer's own
PyTorch step (:attr:`~lif_export.export.model.ExportModel.layers`) into ATen operations, the same
operations eager PyTorch runs (``mul`` then ``add``, ``gt``, ``where``), so nothing is fused or
reordered. The layers are called through :class:`FlatStep`, one flat tensor argument per state:

    Step:      forward(x[batch, *F], *states)       -> (output, *next states)
    Sequence:  forward(x[time, batch, *F], *states) -> (output[time, ...], *final states, *traces[time, ...])

The sequence is one program for every ``T``: ``torch._higher_order_ops.scan`` carries the states
through the step, under a ``torch.cond`` that returns the initial states for ``T = 0`` (``scan``
reads its first step to learn the output shapes, so it cannot run zero steps). Named dims (``time``,
``batch``, a neuron's dynamic ``neurons``) are ``torch.export.Dim``s. The argument and result order
is the manifest's (:func:`~lif_export.export.formats.base.model_io`); a file loads with
``torch.export.load`` alone (its manifest entry is the extra file ``lif_export_manifest.json``).
"""

from __future__ import annotations

import copy
import json
import re
import weakref
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn
from torch._higher_order_ops import scan
from torch.export import Dim, ExportedProgram

from ...errors import InvalidTypeError
from ...network.protocol import StatefulLayer
from ..manifest import EMBEDDED_KEY, ArtifactEntry
from ..model import Dim as ModelDim
from ..model import ExportModel
from .base import Artifact, ExportOptions, embedded_manifest, model_io

#: Example sizes of the named dims when tracing, all distinct (so that none is taken for another):
#: ``time`` and ``batch``, then 3, 4, ... for dynamic feature dims.
EXAMPLE_SIZES = {"time": 13, "batch": 2}
EXAMPLE_FEATURES = 3


class FlatStep(nn.Module):
    """The model's step with one tensor per state: ``forward(x, *states) -> (output, *next states)``.

    Holds a copy of the model's layers, in eval mode and without gradients (so no surrogate or
    straight-through term is traced). A stateful layer runs its ``step(x, [states])``; a cell
    (``LIFCell``) its ``forward(x, *states) -> (out, *next states)``; any other layer ``forward(x)``.
    While ``torch.export`` traces, ``torch.compiler.is_compiling()`` is true: a layer's eager-only
    fast path (one that decides in Python on parameter values) must then take its plain path.
    """

    def __init__(self, model: ExportModel) -> None:
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for layer, _ in model.layers).eval().requires_grad_(False)
        self.indices = [list(indices) for _, indices in model.layers]

    def forward(self, x: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        new_states = list(states)
        for layer, indices in zip(self.layers, self.indices, strict=True):
            own = [states[i] for i in indices]
            if isinstance(layer, StatefulLayer):
                x, own = layer.step(x, own)  # type: ignore[operator]
            elif own:
                x, *own = layer(x, *own)
            else:
                x = layer(x)
            for i, state in zip(indices, own, strict=True):
                new_states[i] = state
        return (x, *new_states)


class FlatSequence(nn.Module):
    """``T`` steps of :class:`FlatStep`: ``forward(x[T, ...], *states) -> (output[T, ...], *final states,
    *traces[T, ...])``; ``T = 0`` returns copies of the initial states."""

    def __init__(self, step: FlatStep, model: ExportModel) -> None:
        super().__init__()
        self.step = step
        # The output's shape per step: (size, None) for a fixed size, (0, axis) for a named dim, which
        # has the size of that axis of x[t].
        self.out_dims = [(d, None) if isinstance(d, int) else (0, model.x_dims.index(d)) for d in model.out_dims]

    def forward(self, x: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        return torch.cond(x.shape[0] == 0, self._no_steps, self._scan, (x, states))

    def _scan(self, x: Tensor, states: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        step_shape = [x.shape[axis] for axis in range(1, x.dim())]

        def body(carry: list[Tensor], x_t: Tensor) -> tuple[list[Tensor], list[Tensor]]:
            # A view of x_t as itself, but through x's sizes: the body then reads every dynamic size
            # (batch, features) from outside, so the traced scan takes them as inputs. AOTInductor
            # needs that to allocate the per-step results (without it, its lowering of scan to a
            # loop fails with "KeyError: s<n>", the batch size's symbol, torch 2.13).
            out, *next_states = self.step(x_t.view(step_shape), *carry)
            # scan's per-step results must not alias its carry (or each other): copies.
            return list(next_states), [t.clone() for t in (out, *next_states)]

        final, per_step = scan(body, list(states), x)
        return (per_step[0], *final, *per_step[1:])

    def _no_steps(self, x: Tensor, states: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        out_shape = [size if axis is None else x.shape[1 + axis] for size, axis in self.out_dims]
        return (x.new_empty((0, *out_shape)), *(s.clone() for s in states),
                *(s.new_empty((0, *s.shape)) for s in states))


def _dim_name(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _shapes(model: ExportModel, sequence: bool) -> tuple[tuple[Tensor, ...], tuple]:
    """Example inputs and ``dynamic_shapes`` for ``forward(x, *states)``: one ``Dim`` per named dim."""
    dims: dict[str, Dim] = {}
    sizes: dict[str, int] = {}

    def example(named: list[ModelDim]) -> tuple[torch.Tensor, dict[int, Dim]]:
        shape, dynamic = [], {}
        for axis, d in enumerate(named):
            if isinstance(d, int):
                shape.append(d)
                continue
            if d not in dims:
                dims[d] = Dim(_dim_name(d))
                sizes[d] = EXAMPLE_SIZES.get(d, EXAMPLE_FEATURES + sum(k not in EXAMPLE_SIZES for k in sizes))
            shape.append(sizes[d])
            dynamic[axis] = dims[d]
        return torch.zeros(shape, dtype=model.torch_dtype), dynamic

    x, x_dynamic = example(["time", *model.x_dims] if sequence else model.x_dims)
    states = [example(s.dims) for s in model.states]
    return (x, *(t for t, _ in states)), (x_dynamic, tuple(d for _, d in states))


def export_program(model: ExportModel, kind: str) -> ExportedProgram:
    """The ``"step"`` or ``"sequence"`` ExportedProgram of ``model`` (traced once per model: the
    ``aoti`` format compiles the same step); raises ``TypeError`` naming the layers when
    ``torch.export`` cannot trace them."""
    programs = _PROGRAMS.setdefault(model, {})
    if kind not in programs:
        programs[kind] = _trace(model, kind)
    return programs[kind]


#: Programs already traced, by model (forgotten with the model).
_PROGRAMS: weakref.WeakKeyDictionary[ExportModel, dict[str, ExportedProgram]] = weakref.WeakKeyDictionary()


def _trace(model: ExportModel, kind: str) -> ExportedProgram:
    step = FlatStep(model)
    module = step if kind == "step" else FlatSequence(step, model)
    args, dynamic_shapes = _shapes(model, kind == "sequence")
    try:
        with torch.no_grad():
            program = torch.export.export(module, args, dynamic_shapes=dynamic_shapes)
    except Exception as err:  # any tracing failure is a refusal to export
        layers = [type(layer).__name__ for layer, _ in model.layers]
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InvalidTypeError(f"cannot export the {kind} of layers {layers} with torch.export: {detail}") from err
    # Python stack traces of the tracing: most of a sequence file's size (scan's body is traced
    # deep inside torch), and they name this package's source lines, which are not the model.
    for graph_module in program.graph_module.modules():
        if isinstance(graph_module, torch.fx.GraphModule):
            for node in graph_module.graph.nodes:
                node.meta.pop("stack_trace", None)
    return program


def save(program: ExportedProgram, path: Path, entry: ArtifactEntry) -> None:
    torch.export.save(program, path, extra_files={EMBEDDED_KEY: embedded_manifest(entry)})


def load(path: Path) -> tuple[ExportedProgram, dict]:
    """An artifact and its embedded manifest entry."""
    extra = {EMBEDDED_KEY: ""}
    program = torch.export.load(path, extra_files=extra)
    return program, json.loads(extra[EMBEDDED_KEY] or "{}")


def _writer(program: ExportedProgram, entry: ArtifactEntry) -> Callable[[Path], None]:
    return lambda folder: save(program, folder / entry["file"], entry)


def artifacts(model: ExportModel, options: ExportOptions) -> list[Artifact]:
    """``<prefix>_step.pt2`` and ``<prefix>_sequence.pt2``; both traced here, before anything is written."""
    planned = []
    for kind in ("step", "sequence"):
        entry: ArtifactEntry = {"name": f"pt2_{kind}", "file": f"{model.prefix}_{kind}.pt2", "format": "pt2",
                                "kind": kind, "method": "forward", "calling_convention": "flat",
                                **model_io(model, kind == "sequence")}
        planned.append(Artifact(entry, _writer(export_program(model, kind), entry)))
    return planned
