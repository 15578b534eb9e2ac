"""AOTInductor packages (``aoti`` artifacts) loaded with ``torch._inductor.aoti_load_package``.

The compiled step runs once per time step with the manifest's flat calling convention
``(x, *states) -> [output, *next states]``. A variation that must not change a bit: the package's
runner with its own thread pool, or run single-threaded (``run_single_threaded``).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..export.formats import aoti as aoti_format
from .base import Backend, Context, register
from .torchscript import TorchScriptArtifact


class AotiStep(TorchScriptArtifact):
    """The compiled step, run exactly like a flat TorchScript step artifact (only loaded differently)."""

    def __init__(self, ctx: Context, artifact: str, single_threaded: bool):
        self.entry = ctx.entry(artifact)
        self.fn, _, _ = aoti_format.load(ctx.artifact(artifact), single_threaded)
        self.flat = True
        self.sequence = False
        self.chunked = False
        self.name = f"aoti/{artifact.removeprefix('aoti_')}/{'single-threaded' if single_threaded else 'pooled'}"


@register("aoti")
def variants(ctx: Context) -> Iterator[Backend]:
    if ctx.usable("aoti_step"):
        for single_threaded in (False, True):
            yield AotiStep(ctx, "aoti_step", single_threaded)
