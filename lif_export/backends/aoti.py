"""AOTInductor packages (``aoti`` artifacts) loaded with ``torch._inductor.aoti_load_package``.

The compiled step runs once per time step, the compiled sequence whole and on uneven chunks with the
state carried, each with the manifest's flat calling convention ``(x, *states) -> [output, *next
states [, *traces]]``. A variation that must not change a bit: the package's runner with its own
thread pool, or run single-threaded (``run_single_threaded``).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..export.formats import aoti as aoti_format
from .base import Backend, Context, register
from .torchscript import FlatProgram


def _package(ctx: Context, artifact: str, single_threaded: bool, chunked: bool = False) -> FlatProgram:
    fn, _, _ = aoti_format.load(ctx.artifact(artifact), single_threaded)
    return FlatProgram(ctx, artifact, fn, "aoti", "single-threaded" if single_threaded else "pooled", chunked)


@register("aoti")
def variants(ctx: Context) -> Iterator[Backend]:
    for single_threaded in (False, True):
        if ctx.usable("aoti_step"):
            yield _package(ctx, "aoti_step", single_threaded)
        if ctx.usable("aoti_sequence"):
            yield _package(ctx, "aoti_sequence", single_threaded)
    if ctx.usable("aoti_sequence"):
        yield _package(ctx, "aoti_sequence", True, chunked=True)
