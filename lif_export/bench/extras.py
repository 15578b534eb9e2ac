"""The optional rows of ``lif-export bench``: the generated C library (:mod:`.c_bench`), torch.export
and AOTInductor (:mod:`.aoti_bench`), ExecuTorch and OpenVINO (:mod:`.runtime_bench`).

Each runs when its tool and artifacts are available and otherwise is one row saying why it was
skipped. ``--small`` skips the ones whose export takes many seconds (AOTInductor compiles,
ExecuTorch lowers): it checks the core paths quickly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .paths import BenchContext, BenchPath, BenchResult, scratch_dir

#: Optional modules that are skipped with ``--small`` (their export takes many seconds).
SLOW = ("AOTInductor", "ExecuTorch/OpenVINO")


def _skipped(workload: str, name: str, why: str) -> BenchResult:
    return BenchResult(workload, name, 1, None, None, note=f"skipped: {why}")


def _guarded(workload: str, name: str, build: Callable[[], tuple[list[BenchPath], list[BenchResult]]]
             ) -> tuple[list[BenchPath], list[BenchResult]]:
    """``build()``, or a skipped row naming the error (a missing tool, a failed export)."""
    try:
        return build()
    except Exception as err:  # an optional row must not stop the benchmark
        return [], [_skipped(workload, name, f"{type(err).__name__}: {err}".splitlines()[0][:200])]


def c_library_rows(workload: str, ctx: BenchContext) -> list[BenchResult]:
    """The generated C library (``c`` format): ``lif_run`` over the W1 sequence (the batch folded into the
    features), ``lif_step`` per step for W2; timed inside C (best of the rounds), bits against native."""
    from .c_bench import c_rows

    features = int(np.prod(ctx.shape))
    rows = c_rows(steps=ctx.steps, rounds=ctx.rounds, step_features=features, run_features=features)
    prefix = "C run" if workload == "W1" else "C step"
    row = next((r for r in rows if r["workload"].startswith(prefix)), None)
    if row is None:
        return [_skipped(workload, "generated C library", rows[0]["result"].removeprefix("skipped: "))]
    ms = row["ns_per_step"] * ctx.steps / 1e6
    if workload == "W1":
        return [BenchResult(workload, "generated C library, lif_run (c format)", 1, ms, ms,
                            identical=row["result"] != "MISMATCH",
                            note=f"timed in C, best of {ctx.rounds}; {row['ratio']}x its own -march=native loop")]
    return [BenchResult(workload, "generated C library, lif_step (c format)", 1, ms, ms,
                        note=f"timed in C, best of {ctx.rounds}")]


def extras(workload: str, ctx: BenchContext, small: bool, first: bool) -> tuple[list[BenchPath], list[BenchResult]]:
    """The optional paths (timed and bit-checked like the others) and rows (timed by their tool) of a
    workload; ``first``: the first thread count (the single-threaded rows run once)."""
    paths: list[BenchPath] = []
    rows: list[BenchResult] = []
    if workload not in ("W1", "W2"):
        return paths, rows
    if first:
        rows += _guarded(workload, "generated C library", lambda: ([], c_library_rows(workload, ctx)))[1]
    if workload != "W2":
        return paths, rows
    if small:
        return paths, rows + [_skipped(workload, name, "--small (their export takes many seconds)") for name in SLOW]

    def aoti() -> tuple[list[BenchPath], list[BenchResult]]:
        from . import aoti_bench

        models = aoti_bench.prepare(scratch_dir("lif-bench-aoti-"))
        return aoti_bench.w2_paths(ctx, models), aoti_bench.cpp_w2(ctx, models) if first else []

    def runtimes() -> tuple[list[BenchPath], list[BenchResult]]:
        from . import runtime_bench

        return runtime_bench.w2_paths(ctx), (runtime_bench.cpp_w2(ctx) + runtime_bench.unavailable_rows()
                                             if first else [])

    for name, build in (("AOTInductor", aoti), ("ExecuTorch/OpenVINO", runtimes)):
        more_paths, more_rows = _guarded(workload, name, build)
        paths += more_paths
        rows += more_rows
    return paths, rows
