"""What a benchmark path is, what it runs on, and what a result row holds (shared by every bench module)."""

from __future__ import annotations

import atexit
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..backends.cpp_runners import cpp_build_dir


@dataclass
class BenchResult:
    """One row of ``lif-export bench``. Times in milliseconds for the whole workload."""

    workload: str
    path: str
    threads: int
    median_ms: float | None
    min_ms: float | None
    neuron_steps_per_s: float | None = None  # W1-W3
    vs_native: float | None = None  # median / the native reference's median (W1, W2)
    vs_baseline: float | None = None  # median / the workload's first path (W1-W3 naive eager, W4-W5 nn.Linear twin)
    identical: bool | None = None  # same bits as the first path of its group (None: not compared)
    note: str = ""
    us_per_step: float | None = None  # W2, W4: latency of one time step
    images_per_s: float | None = None  # W5: training throughput
    peak_rss_mb: float | None = None  # the process's peak resident memory while this path ran
    rss_growth_mb: float | None = None  # that peak minus the resident memory before the path ran
    cpu_median_ms: float | None = None  # the process's CPU time (all threads), median of the rounds


@dataclass
class BenchPath:
    """A way of running a workload. ``run`` returns what the equality check compares; ``group`` names
    the paths compared bit for bit with each other (the group's first path is the reference;
    ``None``: a timing reference whose arithmetic differs, not compared)."""

    name: str
    run: Callable[[], object]
    group: str | None = "bits"
    note: str = ""


@dataclass
class BenchContext:
    """What the paths of one workload get: its size, its input, the exported models, the thread count."""

    steps: int
    shape: tuple[int, ...]  # one step's input shape
    x: torch.Tensor  # [steps, *shape]
    models: Path  # the default neuron, exported
    threads: int
    rounds: int


def scratch_dir(prefix: str) -> Path:
    """A temporary folder removed when the process exits (exports the bench times)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def cpp_rows(ctx: BenchContext, runner: str, models: Path, workload: str = "W2") -> list[BenchResult]:
    """Rows of a C++ runner's own per-step timing (``runner MODELS --bench STEPS --shape ...``, the state fed
    back in C++), ``ctx.rounds`` runs: one row per step artifact it times, or one row saying why not."""
    binary = cpp_build_dir() / runner
    if not binary.exists():
        return [BenchResult(workload, f"C++ {runner}", 1, None, None,
                            note=f"skipped: {binary} not built (scripts/build_cpp.sh)")]
    per_step: dict[str, list[float]] = {}
    for _ in range(ctx.rounds):
        done = subprocess.run([str(binary), str(models), "--bench", str(ctx.steps), "--shape",
                               ",".join(map(str, ctx.shape))], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            return [BenchResult(workload, f"C++ {runner}", 1, None, None,
                                note=f"skipped: {runner} failed: {done.stderr.strip()[-200:]}")]
        for line in done.stdout.splitlines():
            if line.startswith("bench "):
                per_step.setdefault(line.split()[1], []).append(float(line.rsplit(":", 1)[1].split()[0]))
    return [BenchResult(workload, f"C++ {runner} ({artifact})", 1, statistics.median(us) * ctx.steps / 1e3,
                        min(us) * ctx.steps / 1e3, us_per_step=statistics.median(us),
                        note="C++ timing; its bits are checked by the runner's golden-vector mode")
            for artifact, us in per_step.items()]
