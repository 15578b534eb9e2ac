"""The benchmark paths and the timing loop behind ``lif-export bench``."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from .. import __version__
from ..backends.cpp_runners import cpp_build_dir
from ..backends.ort_session import make_session
from ..backends.ort_stream import OnnxStepStream
from ..export import NeuronSpec, export
from ..fast import simulate
from .native import load_native, run_native

#: name -> (T, shape of one step)
WORKLOADS: dict[str, tuple[int, tuple[int, ...]]] = {
    "W1": (500, (32, 1024)),
    "W2": (1000, (1, 128)),
    "W3": (100, (32, 1024)),
}
SMALL: dict[str, tuple[int, tuple[int, ...]]] = {"W1": (20, (4, 64)), "W2": (50, (1, 16)), "W3": (10, (4, 64))}


@dataclass
class BenchResult:
    workload: str
    path: str
    threads: int
    median_ms: float | None
    min_ms: float | None
    neuron_steps_per_s: float | None = None
    vs_native: float | None = None  # median / native median
    vs_naive: float | None = None  # median / naive eager median (< 1: faster)
    identical: bool | None = None  # same bits as the naive eager loop
    note: str = ""
    us_per_step: float | None = None  # W2


@dataclass
class BenchPath:
    name: str
    run: Callable[[], object]  # returns what the equality check compares


@dataclass
class BenchContext:
    steps: int
    shape: tuple[int, ...]
    x: torch.Tensor
    models: Path
    threads: int


def _time(fn: Callable[[], object], rounds: int) -> tuple[list[float], object]:
    result = fn()  # warm-up (twice: TorchScript profiles its first runs), and the value checked
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times, result


def _same(a: object, b: object) -> bool:
    if isinstance(a, tuple):
        return all(_same(p, q) for p, q in zip(a, b, strict=True))
    a = a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


# -- W1 ------------------------------------------------------------------------------------------

def w1_paths(ctx: BenchContext) -> list[BenchPath]:
    x, spec = ctx.x, NeuronSpec()
    cell, seq = spec.cell(), spec.sequence()
    beta, threshold, v_reset = cell.neuron_parameters()
    zeros = torch.zeros(ctx.shape)
    scripted = torch.jit.script(spec.sequence())
    out = torch.empty_like(x)
    session = make_session(ctx.models / "lif_sequence.onnx", "all", ctx.threads)
    xn, vn = x.numpy(), np.zeros(ctx.shape, np.float32)

    def naive():
        v, spikes = zeros, []
        with torch.no_grad():
            for t in range(x.shape[0]):
                s, v = cell(x[t], v)
                spikes.append(s)
        return torch.stack(spikes), v

    def eager_sequence():
        with torch.no_grad():
            return seq(x)

    def fast_out():
        s, v, _ = simulate(x, zeros, beta, threshold, v_reset, "zero", out=out)
        return s, v

    def torchscript():
        with torch.no_grad():
            return scripted(x, zeros)

    def onnx_sequence():
        s, v = session.run(["spike", "v_next"], {"x": xn, "v": vn})
        return s, v

    return [
        BenchPath("eager naive loop (LIFCell per step)", naive),
        BenchPath("eager LIFSequence (fast path)", eager_sequence),
        BenchPath("lif_export.fast.simulate, preallocated out", fast_out),
        BenchPath("TorchScript LIFSequence", torchscript),
        BenchPath("onnxruntime sequence graph (Loop)", onnx_sequence),
    ]


# -- W2 ------------------------------------------------------------------------------------------

def w2_paths(ctx: BenchContext) -> list[BenchPath]:
    x, spec = ctx.x, NeuronSpec()
    cell = spec.cell()
    scripted = torch.jit.script(spec.cell())
    session = make_session(ctx.models / "lif_step.onnx", "all", ctx.threads)
    stream = OnnxStepStream(ctx.models, ctx.shape, threads=ctx.threads)
    xn = x.numpy()
    steps = x.shape[0]

    def torch_loop(module):
        def run():
            v, spikes = torch.zeros(ctx.shape), torch.empty_like(x)
            with torch.no_grad():
                for t in range(steps):
                    s, v = module(x[t], v)
                    spikes[t] = s
            return spikes
        return run

    def ort_plain():
        v, spikes = np.zeros(ctx.shape, np.float32), np.empty_like(xn)
        for t in range(steps):
            spikes[t], v = session.run(["spike", "v_next"], {"x": xn[t], "v": v})
        return spikes

    def ort_stream():
        stream.reset()
        spikes = np.empty_like(xn)
        for t in range(steps):
            spikes[t] = stream.step(xn[t])
        return spikes

    return [
        BenchPath("eager naive loop (LIFCell per step)", torch_loop(cell)),
        BenchPath("TorchScript LIFCell per step", torch_loop(scripted)),
        BenchPath("onnxruntime step, session.run", ort_plain),
        BenchPath("onnxruntime step, OnnxStepStream (bound I/O)", ort_stream),
    ]


# -- W3 ------------------------------------------------------------------------------------------

def w3_paths(ctx: BenchContext) -> list[BenchPath]:
    x, spec = ctx.x, NeuronSpec()
    cell, seq = spec.cell(), spec.sequence()
    scripted = torch.jit.script(spec.sequence())
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))

    def naive():
        xi = x.clone().requires_grad_(True)
        v, spikes = torch.zeros(ctx.shape), []
        for t in range(x.shape[0]):
            s, v = cell(xi[t], v)
            spikes.append(s)
        (torch.stack(spikes) * weights).sum().backward()
        return xi.grad

    def module(m):
        def run():
            xi = x.clone().requires_grad_(True)
            spikes, _ = m(xi)
            (spikes * weights).sum().backward()
            return xi.grad
        return run

    return [
        BenchPath("eager naive loop + autograd", naive),
        BenchPath("eager LIFSequence (hand-written BPTT)", module(seq)),
        BenchPath("TorchScript LIFSequence + autograd", module(scripted)),
    ]


PATHS = {"W1": w1_paths, "W2": w2_paths, "W3": w3_paths}


def _cpp_w2(ctx: BenchContext, rounds: int) -> list[BenchResult]:
    """The C++ runners' own per-step timing (``--bench``), the state fed back in C++."""
    rows = []
    for runner, artifact in [("lif_ort_runner", "onnx_step"), ("lif_torch_runner", "torchscript_step"),
                             ("lif_torch_runner", "torchscript_neuron")]:
        binary = cpp_build_dir() / runner
        name = f"C++ {runner} ({artifact})"
        if not binary.exists():
            note = f"skipped: {binary} not built (scripts/build_cpp.sh)"
            rows.append(BenchResult("W2", name, 1, None, None, note=note))
            continue
        per_step = []
        for _ in range(rounds):
            result = subprocess.run([str(binary), str(ctx.models), "--bench", str(ctx.steps), "--shape",
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


def _native(ctx: BenchContext, workload: str, rounds: int) -> tuple[BenchResult, object | None]:
    """The native row and its output (``None`` when no compiler built it). W1 and W2 only."""
    lib, note = load_native()
    if lib is None:
        return BenchResult(workload, "native C loop", 1, None, None, note=note), None
    xn = np.ascontiguousarray(ctx.x.numpy())
    spikes = np.empty_like(xn)
    v = np.zeros(ctx.shape, np.float32)

    def run():
        v.fill(0.0)
        run_native(lib, xn, spikes, v, 0.9, 1.0, 0.0)
        return (spikes, v) if workload == "W1" else spikes

    times, value = _time(run, rounds)
    result = BenchResult(workload, "native C loop (reference)", 1, statistics.median(times) * 1e3, min(times) * 1e3,
                         note=f"{note}, v kept in a register, preallocated output")
    return result, value


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "lif_export": __version__,
    }


def run_bench(
    workloads: list[str] | None = None,
    threads: list[int] | None = None,
    rounds: int = 5,
    small: bool = False,
    report: Callable[[str], None] = print,
) -> dict:
    """Run the benchmark; returns ``{"machine": ..., "results": [BenchResult as dict, ...]}``."""
    sizes = SMALL if small else WORKLOADS
    workloads = workloads or list(sizes)
    unknown = [w for w in workloads if w not in sizes]
    if unknown:
        raise ValueError(f"workload must be one of {list(sizes)}, got {unknown}")
    threads = threads or [1, 2]
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    previous = torch.get_num_threads()
    results: list[BenchResult] = []
    with tempfile.TemporaryDirectory(prefix="lif-bench-") as tmp:
        export(out_dir=tmp)
        for workload in workloads:
            steps, shape = sizes[workload]
            g = torch.Generator().manual_seed(0)
            x = (torch.rand(steps, *shape, generator=g) * 0.6).contiguous()
            neuron_steps = steps * int(np.prod(shape))
            for n in threads:
                torch.set_num_threads(n)
                ctx = BenchContext(steps, shape, x, Path(tmp), n)
                native = _native(ctx, workload, rounds) if n == threads[0] and workload != "W3" else None
                rows, baseline_value, naive_ms = [], None, None
                for i, path in enumerate(PATHS[workload](ctx)):
                    report(f"{workload} threads={n}: {path.name} ...")
                    times, value = _time(path.run, rounds)
                    med = statistics.median(times) * 1e3
                    if i == 0:
                        baseline_value, naive_ms = value, med
                    rows.append(BenchResult(workload, path.name, n, med, min(times) * 1e3,
                                            identical=_same(value, baseline_value)))
                if workload == "W2" and n == threads[0]:
                    rows += _cpp_w2(ctx, rounds)
                if native is not None:
                    native_row, native_value = native
                    if native_value is not None:
                        native_row.identical = _same(native_value, baseline_value)
                    rows.insert(0, native_row)
                native_ms = next((r.median_ms for r in results + rows
                                  if r.workload == workload and r.path.startswith("native") and r.median_ms), None)
                for r in rows:
                    if r.median_ms is None:
                        continue
                    r.neuron_steps_per_s = neuron_steps / (r.median_ms / 1e3)
                    r.vs_naive = r.median_ms / naive_ms
                    r.vs_native = r.median_ms / native_ms if native_ms else None
                    if workload == "W2":
                        r.us_per_step = r.median_ms * 1e3 / steps
                results += rows
    torch.set_num_threads(previous)
    return {"machine": machine(), "rounds": rounds, "small": small, "results": [asdict(r) for r in results]}


def format_results(data: dict) -> str:
    m = data["machine"]
    lines = [f"machine: {m['cpu']} ({m['cores']} cores), torch {m['torch']}, onnxruntime {m['onnxruntime']}, "
             f"median of {data['rounds']} rounds after a warm-up"]
    header = (f"{'workload':<8} {'thr':>3}  {'path':<46} {'median ms':>10} {'min ms':>9} {'Mneuron-steps/s':>15} "
              f"{'x native':>8} {'x naive':>8} {'us/step':>8}  same bits")
    lines += [header, "-" * len(header)]
    for r in data["results"]:
        def num(v, fmt):
            return format(v, fmt) if v is not None else "-"
        same = {True: "yes", False: "NO", None: "-"}[r["identical"]]
        lines.append(
            f"{r['workload']:<8} {r['threads']:>3}  {r['path']:<46} {num(r['median_ms'], '10.2f')} "
            f"{num(r['min_ms'], '9.2f')} {num(r['neuron_steps_per_s'] and r['neuron_steps_per_s'] / 1e6, '15.1f')} "
            f"{num(r['vs_native'], '8.2f')} {num(r['vs_naive'], '8.3f')} {num(r['us_per_step'], '8.2f')}  {same}"
            + (f"  ({r['note']})" if r["note"] else "")
        )
    return "\n".join(lines)


def save_json(data: dict, path: Path) -> None:
    from ..io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


__all__ = ["WORKLOADS", "BenchResult", "format_results", "run_bench", "save_json"]
