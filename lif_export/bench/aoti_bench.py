"""W2 rows for torch.export and AOTInductor: one LIF step per call, from Python and from C++.

For ``lif-export bench`` (:mod:`.runner`): :func:`prepare` exports the default neuron as ``pt2`` and
``aoti`` (the package comes from the compile cache after the first time); :func:`w2_paths` are the
Python loops, timed and bit-checked by the runner like its other W2 paths; :func:`cpp_w2` times a C++
runner's own ``--bench`` loop (the state fed back in C++), any ``(runner, artifact)`` pairs.
"""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..backends.cpp_runners import cpp_build_dir
from ..export import NeuronSpec, export
from ..export.formats import aoti as aoti_format
from ..export.formats import pt2 as pt2_format
from .paths import BenchContext, BenchPath, BenchResult

#: The C++ rows of these formats: ``(runner, artifact)``.
CPP_RUNS = [("lif_aoti_runner", "aoti_step")]


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


def cpp_w2(ctx: BenchContext, models: Path, runs: list[tuple[str, str]] = CPP_RUNS) -> list[BenchResult]:
    """Each ``runner --bench T --shape ...`` on ``models``: the median and minimum of ``ctx.rounds`` runs."""
    rows = []
    for runner, artifact in runs:
        binary = cpp_build_dir() / runner
        name = f"C++ {runner} ({artifact})"
        if not binary.exists():
            note = f"skipped: {binary} not built (scripts/build_cpp.sh)"
            rows.append(BenchResult("W2", name, 1, None, None, note=note))
            continue
        per_step = []
        for _ in range(ctx.rounds):
            result = subprocess.run([str(binary), str(models), "--bench", str(ctx.steps), "--shape",
                                     ",".join(map(str, ctx.shape))], capture_output=True, text=True, timeout=600)
            line = next((ln for ln in result.stdout.splitlines() if ln.startswith(f"bench {artifact} ")), None)
            if result.returncode != 0 or line is None:
                break
            per_step.append(float(line.rsplit(":", 1)[1].split()[0]))
        if not per_step:
            rows.append(BenchResult("W2", name, 1, None, None, note=f"skipped: {runner} failed"))
            continue
        rows.append(BenchResult("W2", name, 1, statistics.median(per_step) * ctx.steps / 1e3,
                                min(per_step) * ctx.steps / 1e3,
                                note="C++ timing; its bits are checked by the runner's golden-vector mode"))
    return rows
