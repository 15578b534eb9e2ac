"""The TorchScript format: the model's own modules, scripted, with the manifest entry embedded.

TorchScript needs no per-layer emitter: every layer's PyTorch step compiles with
``torch.jit.script`` as it is, so the registry of this format is the model's list of scripted
artifacts (:meth:`~lif_export.export.model.ExportModel.scripted`). A single neuron is called
``flat``: ``(x, v) -> (spike, v_next)``; a network ``state_list``: ``(x, [states]) -> (out,
[states] [, [traces]])``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from ..manifest import EMBEDDED_KEY
from ..model import ExportModel, Scripted
from .base import Artifact, ExportOptions, embedded_manifest, model_io


def _writer(scripted: Scripted, entry: dict) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        module = scripted.build()
        if not isinstance(module, torch.jit.ScriptModule):
            module = torch.jit.script(module.eval())
        torch.jit.save(module, str(folder / entry["file"]), _extra_files={EMBEDDED_KEY: embedded_manifest(entry)})

    return write


def artifacts(model: ExportModel, options: ExportOptions) -> list[Artifact]:
    planned = []
    for scripted in model.scripted():
        entry = {"name": scripted.name, "file": f"{scripted.stem}.pt", "format": "torchscript", "kind": scripted.kind,
                 "method": scripted.method, "calling_convention": scripted.convention,
                 **model_io(model, scripted.kind == "sequence"), **scripted.extra}
        planned.append(Artifact(entry, _writer(scripted, entry)))
    return planned


def load(path: Path) -> tuple[torch.jit.ScriptModule, dict]:
    """Load an artifact and its embedded manifest entry."""
    extra = {EMBEDDED_KEY: ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module, json.loads(extra[EMBEDDED_KEY] or "{}")
