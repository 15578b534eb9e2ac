"""W2 rows for torch.export and AOTInductor: one LIF step per call, from Python and from C++.

For ``lif-export bench`` (:mod:`.runner`): :func:`prepare` exports the default neuron as ``pt2`` and
``aoti`` (the package comes from the compile cache after the first time); :func:`w2_paths` are the
Python loops, timed and bit-checked by the runner like its other W2 paths; :func:`cpp_w2` times a C++
runner's own ``--bench`` loop (the state fed back in C++), any ``(runner, artifact)`` pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..export import NeuronSpec, export
from ..export.formats import aoti as aoti_format
from ..export.formats import pt2 as pt2_format
from .paths import BenchContext, BenchPath, BenchResult, cpp_rows

#: The C++ rows of these formats: ``(runner, artifact)``.


def prepare(folder: Path) -> Path:
    """The default neuron exported as ``pt2`` and ``aoti`` into ``folder``."""
    export(NeuronSpec(), folder, formats=["pt2", "aoti"])
    return folder


def w2_paths(ctx: BenchContext, models: Path) -> list[BenchPath]:
    """``ExportedProgram.module()`` and the AOTInductor package, once per step (``x[T, *shape]`` of ``ctx``)."""
    program, _ = pt2_format.load(models / "lif_step.pt2")
    package, _, _ = aoti_format.load(models / "lif_step_aoti.pt2")
    x = ctx.x

    def loop(step: Callable[[torch.Tensor, torch.Tensor], Sequence[torch.Tensor]]) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            v, spikes = torch.zeros(ctx.shape), torch.empty_like(x)
            with torch.no_grad():
                for t in range(x.shape[0]):
                    s, v = step(x[t], v)
                    spikes[t] = s
            return spikes

        return run

    return [
        BenchPath("torch.export ExportedProgram.module() per step", loop(program.module())),
        BenchPath("AOTInductor package (Python) per step", loop(package)),
    ]


def cpp_w2(ctx: BenchContext, models: Path) -> list[BenchResult]:
    """``lif_aoti_runner --bench`` on ``models``: the median and minimum of ``ctx.rounds`` runs."""
    return cpp_rows(ctx, "lif_aoti_runner", models)
