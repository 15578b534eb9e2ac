"""TorchScript artifacts: scripted modules with the manifest entry as an extra file."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .manifest import EMBEDDED_KEY
from .spec import NeuronSpec

#: kind -> how to build the module for a spec.
_BUILDERS = {
    "step": NeuronSpec.cell,
    "sequence": NeuronSpec.sequence,
    "stateful_neuron": NeuronSpec.neuron,
}


def scripted(spec: NeuronSpec, kind: str) -> torch.jit.ScriptModule:
    return torch.jit.script(_BUILDERS[kind](spec).eval())


def load(path: Path) -> tuple[torch.jit.ScriptModule, dict]:
    """Load an artifact and its embedded manifest entry."""
    extra = {EMBEDDED_KEY: ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return module, json.loads(extra[EMBEDDED_KEY] or "{}")
