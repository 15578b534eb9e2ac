"""torch.export programs (``pt2`` artifacts) loaded from disk with ``torch.export.load``.

The step program runs once per time step, the sequence program whole and on uneven chunks with the
state carried, each through ``ExportedProgram.module()`` with the manifest's flat calling convention
``(x, *states) -> (output, *next states [, *traces])``. A variation that must not change a bit: the
step program lowered to the core ATen operator set (``run_decompositions()``), the form compilers and
other runtimes consume. Each file is loaded once per verification (loading takes seconds).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..export.formats import pt2 as pt2_format
from .base import Backend, Context, register
from .torchscript import FlatProgram


@register("pt2")
def variants(ctx: Context) -> Iterator[Backend]:
    if ctx.usable("pt2_step"):
        program, _ = pt2_format.load(ctx.artifact("pt2_step"))
        yield FlatProgram(ctx, "pt2_step", program.module(), "pt2", "plain")
        yield FlatProgram(ctx, "pt2_step", program.run_decompositions().module(), "pt2", "decomposed")
    if ctx.usable("pt2_sequence"):
        module = pt2_format.load(ctx.artifact("pt2_sequence"))[0].module()
        yield FlatProgram(ctx, "pt2_sequence", module, "pt2", "plain")
        yield FlatProgram(ctx, "pt2_sequence", module, "pt2", "plain", chunked=True)
