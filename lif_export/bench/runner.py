"""The benchmark paths of the single neuron (W1-W3) and the timing loop behind ``lif-export bench``."""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from .. import __version__
from ..backends.base import chunk_bounds
from ..backends.ort_session import make_session
from ..backends.ort_stream import OnnxSequenceStream, OnnxStepStream
from ..errors import InvalidValueError
from ..export import NeuronSpec, export
from ..fast import simulate
from ..fast.ccompile import cpu_info
from ..fast.kernel import compiled
from ..functional import lif_sequence
from ..modules import LIFCell, LIFSequence
from .extras import extras
from .native import load_native, run_native
from .networks import cpp_w4, w4_paths, w5_paths
from .paths import BenchContext, BenchPath, BenchResult, cpp_rows

#: name -> (T, shape of one step). W4/W5: the digits network, T steps of one image / a batch of images.
WORKLOADS: dict[str, tuple[int, tuple[int, ...]]] = {
    "W1": (500, (32, 1024)),
    "W2": (1000, (1, 128)),
    "W3": (100, (32, 1024)),
    "W4": (1000, (1, 64)),
    "W5": (12, (64, 64)),
}
SMALL: dict[str, tuple[int, tuple[int, ...]]] = {"W1": (20, (4, 64)), "W2": (50, (1, 16)), "W3": (10, (4, 64)),
                                                 "W4": (20, (1, 64)), "W5": (4, (8, 64))}
#: The workloads of one neuron, whose throughput is counted in neuron-steps.
NEURON_WORKLOADS = ("W1", "W2", "W3")


def _time_once(fn: Callable[[], object], times: list[float], cpu: list[float]) -> None:
    """One timed call: its wall-clock seconds into ``times``, the process's CPU seconds into ``cpu``."""
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    times.append(time.perf_counter() - start)
    cpu.append(time.process_time() - start_cpu)


def _same(a: object, b: object) -> bool:
    if isinstance(a, tuple):
        return all(_same(p, q) for p, q in zip(a, b, strict=True))  # type: ignore[call-overload]
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _memory_mb() -> dict[str, float] | None:
    """``{"VmRSS": ..., "VmHWM": ...}`` of this process in MB (Linux), else ``None``."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in lines if line.startswith(("VmRSS", "VmHWM")))
    return {k: int(v.split()[0]) / 1024 for k, v in fields.items()}


def _reset_peak_memory() -> None:
    """Start a new peak-RSS measurement (writing 5 to clear_refs resets VmHWM, Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


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
    bound = {name: np.empty(shape, np.float32) for name, shape in
             (("spike", xn.shape), ("v_next", vn.shape), ("v_trace", xn.shape))}
    binding = session.io_binding()
    binding.bind_cpu_input("x", xn)
    binding.bind_cpu_input("v", vn)
    for name, array in bound.items():
        binding.bind_output(name, "cpu", 0, np.float32, list(array.shape), array.ctypes.data)
    stream = OnnxSequenceStream(ctx.models, ctx.shape, threads=ctx.threads)
    chunks, streamed = chunk_bounds(xn.shape[0]), np.empty_like(xn)

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

    def fast_out(implementation: str) -> Callable[[], object]:
        def run():
            s, v, _ = simulate(x, zeros, beta, threshold, v_reset, "zero", out=out, implementation=implementation)
            return s, v
        return run

    def torchscript():
        with torch.no_grad():
            return scripted(x, zeros)

    def reused(module) -> Callable[[], object]:
        def run():
            with torch.no_grad():
                return module(x, zeros, out)
        return run

    def onnx_sequence():
        s, v = session.run(["spike", "v_next"], {"x": xn, "v": vn})
        return s, v

    def onnx_bound():
        session.run_with_iobinding(binding)
        return bound["spike"], bound["v_next"]

    def onnx_chunked():
        stream.reset()
        for start, end in chunks:
            stream.run(xn[start:end], out=streamed[start:end])
        return streamed, stream.state("v")

    kernel = compiled()
    return [
        BenchPath("eager naive loop (LIFCell per step)", naive),
        BenchPath("eager LIFSequence (fast path)", eager_sequence,
                  note="a new output every call, from numpy's allocator (transparent huge pages)"),
        BenchPath("eager LIFSequence, reused out=", reused(seq), note="forward(x, v, out=buffer)"),
        BenchPath("lif_export.fast.simulate, preallocated out", fast_out("auto"),
                  note=f"compiled kernel: {kernel.description}" if kernel.library is not None else kernel.description),
        BenchPath("fast.simulate, PyTorch ops (no compiler)", fast_out("torch")),
        BenchPath("TorchScript LIFSequence", torchscript,
                  note="a new output every call: its page faults (THP_MEM_ALLOC_ENABLE=1 makes them fewer)"),
        BenchPath("TorchScript LIFSequence, reused out=", reused(scripted),
                  note="forward(x, v, out=buffer), as the native reference reuses its output"),
        BenchPath("onnxruntime sequence graph (Scan)", onnx_sequence),
        BenchPath("onnxruntime sequence graph, bound outputs", onnx_bound, note="IOBinding to preallocated arrays"),
        BenchPath("onnxruntime sequence graph, chunked (OnnxSequenceStream)", onnx_chunked,
                  note="chunks of 1, 7, 50, ... steps (the verify suite's), each written into a preallocated output"),
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
    x = ctx.x
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))

    def naive(cell):
        def run():
            xi = x.clone().requires_grad_(True)
            v, spikes = torch.zeros(ctx.shape), []
            for t in range(x.shape[0]):
                s, v = cell(xi[t], v)
                spikes.append(s)
            (torch.stack(spikes) * weights).sum().backward()
            return _grads(cell, xi)
        return run

    def module(m):
        def run():
            xi = x.clone().requires_grad_(True)
            spikes, _ = m(xi)
            (spikes * weights).sum().backward()
            return _grads(m, xi)
        return run

    def autograd_loop(m: LIFSequence):
        def run():  # the module's own loop (lif_sequence), without its fast path
            xi = x.clone().requires_grad_(True)
            beta, threshold, v_reset = m.neuron_parameters()
            spikes, _, _ = lif_sequence(xi, torch.zeros(ctx.shape), beta, threshold, v_reset, m.reset, m.surrogate,
                                        m.surrogate_slope)
            (spikes * weights).sum().backward()
            return _grads(m, xi)
        return run

    learned = LIFSequence(learn_beta=True, learn_threshold=True)

    paths = [
        BenchPath("eager naive loop + autograd", naive(LIFCell())),
        BenchPath("eager LIFSequence (hand-written BPTT)", module(LIFSequence())),
        BenchPath("TorchScript LIFSequence + autograd", module(torch.jit.script(LIFSequence()))),
        BenchPath("learned beta, threshold: naive loop + autograd",
                  naive(LIFCell(learn_beta=True, learn_threshold=True)), group=None,
                  note="not compared: per step, it sums the threshold's gradient in another order"),
        BenchPath("learned beta, threshold: lif_sequence + autograd", autograd_loop(learned), group="learned"),
        BenchPath("learned beta, threshold: eager LIFSequence (BPTT)", module(learned), group="learned"),
    ]
    for path in paths:
        kept = saved_for_backward(path.run, exclude=weights) / (x.numel() * x.element_size())
        path.note = "; ".join(filter(None, [path.note, f"keeps {kept:.2f} floats per neuron-step for backward"]))
    return paths


def saved_for_backward(run: Callable[[], object], exclude: torch.Tensor) -> int:
    """Bytes the autograd graph of one call of ``run`` keeps for its backward pass: the distinct
    storages of the saved tensors (``exclude``'s, the loss's constant weights, not counted)."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() != exclude.untyped_storage().data_ptr():
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(storages.values())


def _grads(module: torch.nn.Module, xi: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The input's gradient and every parameter's (cleared for the next round)."""
    grads = [xi.grad]
    for p in module.parameters():
        grads.append(p.grad)
        p.grad = None
    return tuple(g for g in grads if g is not None)


PATHS: dict[str, Callable[[BenchContext], list[BenchPath]]] = {
    "W1": w1_paths, "W2": w2_paths, "W3": w3_paths, "W4": w4_paths, "W5": w5_paths,
}


def _cpp_w2(ctx: BenchContext) -> list[BenchResult]:
    """The ONNX Runtime and libtorch C++ runners' own per-step timing of the step artifacts."""
    return [row for runner in ("lif_ort_runner", "lif_torch_runner") for row in cpp_rows(ctx, runner, ctx.models)]


class _Native:
    """The native reference of W1/W2, timed in every round beside the workload's paths (and once more
    after the last): on a shared machine the load then weighs on it as on the paths."""

    def __init__(self, ctx: BenchContext, workload: str):
        self.workload = workload
        self.built = load_native()
        self.times: list[float] = []
        self.cpu: list[float] = []
        self.value: object | None = None
        if self.built.library is None:
            return
        lib = self.built.library
        xn = np.ascontiguousarray(ctx.x.numpy())
        spikes = np.empty_like(xn)
        v = np.zeros(ctx.shape, np.float32)

        def run():
            v.fill(0.0)
            run_native(lib, xn, spikes, v, 0.9, 1.0, 0.0)
            return (spikes, v) if workload == "W1" else spikes

        self.run = run
        self.value = run()  # warm-up, and the value checked

    def time_round(self) -> None:
        if self.built.library is not None:
            _time_once(self.run, self.times, self.cpu)

    def row(self, reference: object) -> BenchResult:
        if self.built.library is None:
            return BenchResult(self.workload, "native C loop", 1, None, None, note=self.built.description)
        return BenchResult(self.workload, "native C loop (reference)", 1, statistics.median(self.times) * 1e3,
                           min(self.times) * 1e3, identical=_same(self.value, reference),
                           note=f"{self.built.description}, v kept in a register, preallocated output; timed "
                           f"in every round beside the paths", cpu_median_ms=statistics.median(self.cpu) * 1e3)


def machine() -> dict:
    cpu = cpu_info()
    native, kernel = load_native(), compiled()
    return {
        "cpu": cpu["model"],
        "cpu_features": cpu["features"],
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "lif_export": __version__,
        "native_reference": native.description,
        "fast_kernel": kernel.description,
    }


def _run_paths(workload: str, ctx: BenchContext, report: Callable[[str], None], more: list[BenchPath],
               native: _Native | None) -> tuple[list[BenchResult], dict[str, object]]:
    """Time every path of a workload (and ``more``, and the ``native`` reference): its rows (bits and
    memory filled in) and each group's reference value.

    Each path is first run twice alone (TorchScript profiles its first runs; the first value is the one
    compared, and the peak memory is this warm-up's). Then every round times each path once, one after
    the other: a burst of load on a shared machine weighs on all of them alike, so their ratios hold."""
    paths = PATHS[workload](ctx) + more
    rows: list[BenchResult] = []
    references: dict[str, object] = {}
    for path in paths:
        report(f"{workload} threads={ctx.threads}: {path.name} (warm-up) ...")
        _reset_peak_memory()
        before = _memory_mb()
        value = path.run()
        path.run()
        after = _memory_mb()
        identical = None if path.group is None else _same(value, references.setdefault(path.group, value))
        row = BenchResult(workload, path.name, ctx.threads, None, None, identical=identical, note=path.note)
        if before and after and "VmHWM" in after:
            row.peak_rss_mb, row.rss_growth_mb = after["VmHWM"], after["VmHWM"] - before["VmRSS"]
        rows.append(row)
    times: list[list[float]] = [[] for _ in paths]
    cpu: list[list[float]] = [[] for _ in paths]
    for round_number in range(ctx.rounds):
        report(f"{workload} threads={ctx.threads}: round {round_number + 1} of {ctx.rounds}, every path ...")
        if native is not None:
            native.time_round()
        for path, path_times, path_cpu in zip(paths, times, cpu, strict=True):
            _time_once(path.run, path_times, path_cpu)
    if native is not None:
        native.time_round()
    for row, path_times, path_cpu in zip(rows, times, cpu, strict=True):
        row.median_ms, row.min_ms = statistics.median(path_times) * 1e3, min(path_times) * 1e3
        row.cpu_median_ms = statistics.median(path_cpu) * 1e3
    return rows, references


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
        raise InvalidValueError(f"workload must be one of {list(sizes)}, got {unknown}")
    threads = threads or [1, 2]
    if rounds < 1:
        raise InvalidValueError(f"rounds must be >= 1, got {rounds}")
    previous = torch.get_num_threads()
    results: list[BenchResult] = []
    try:
        with tempfile.TemporaryDirectory(prefix="lif-bench-") as tmp:
            export(out_dir=tmp)
            for workload in workloads:
                steps, shape = sizes[workload]
                g = torch.Generator().manual_seed(0)
                x = (torch.rand(steps, *shape, generator=g) * 0.6).contiguous()
                for n in threads:
                    torch.set_num_threads(n)
                    ctx = BenchContext(steps, shape, x, Path(tmp), n, rounds)
                    native = _Native(ctx, workload) if n == threads[0] and workload in ("W1", "W2") else None
                    more_paths, more_rows = extras(workload, ctx, small, n == threads[0])
                    rows, references = _run_paths(workload, ctx, report, more_paths, native)
                    rows += more_rows
                    if native is not None:
                        rows.insert(0, native.row(references["bits"]))
                    if workload == "W2" and n == threads[0]:
                        rows += _cpp_w2(ctx)
                    if workload == "W4" and n == threads[0]:
                        rows += cpp_w4(ctx)
                    _ratios(workload, ctx, rows, results)
                    results += rows
    finally:
        torch.set_num_threads(previous)
    return {"machine": machine(), "rounds": rounds, "small": small, "results": [asdict(r) for r in results]}


def _ratios(workload: str, ctx: BenchContext, rows: list[BenchResult], earlier: list[BenchResult]) -> None:
    baseline = next((r.median_ms for r in rows if r.median_ms and not r.path.startswith("native")), None)
    native_ms = next((r.median_ms for r in earlier + rows
                      if r.workload == workload and r.path.startswith("native") and r.median_ms), None)
    for r in rows:
        if r.median_ms is None:
            continue
        r.vs_baseline = r.median_ms / baseline if baseline else None
        r.vs_native = r.median_ms / native_ms if native_ms else None
        if workload in NEURON_WORKLOADS:
            r.neuron_steps_per_s = ctx.steps * int(np.prod(ctx.shape)) / (r.median_ms / 1e3)
        if workload in ("W2", "W4"):
            r.us_per_step = r.median_ms * 1e3 / ctx.steps
        if workload == "W5":
            r.images_per_s = ctx.shape[0] / (r.median_ms / 1e3)


#: The text table's numeric columns: (header, width, format, value of a result row).
COLUMNS: list[tuple[str, int, str, Callable[[dict], float | None]]] = [
    ("median ms", 10, ".2f", lambda r: r["median_ms"]),
    ("min ms", 9, ".2f", lambda r: r["min_ms"]),
    ("cpu ms", 9, ".2f", lambda r: r.get("cpu_median_ms")),
    ("Mneuron-steps/s", 15, ".1f", lambda r: r["neuron_steps_per_s"] and r["neuron_steps_per_s"] / 1e6),
    ("x native", 8, ".2f", lambda r: r["vs_native"]),
    ("x base", 8, ".3f", lambda r: r.get("vs_baseline")),
    ("us/step", 8, ".2f", lambda r: r["us_per_step"]),
    ("img/s", 8, ".0f", lambda r: r.get("images_per_s")),
    ("peak MB", 8, ".0f", lambda r: r.get("peak_rss_mb")),
]


def format_results(data: dict) -> str:
    m = data["machine"]
    lines = [f"machine: {m['cpu']} ({m['cores']} cores; {' '.join(m.get('cpu_features', [])) or 'features unknown'}), "
             f"torch {m['torch']}, onnxruntime {m['onnxruntime']}, median of {data['rounds']} rounds after a warm-up",
             f"native reference: {m.get('native_reference', '-')}; lif_export.fast kernel: {m.get('fast_kernel', '-')}",
             "x base: ratio to the workload's first path (W1-W3 the naive eager loop, W4-W5 the nn.Linear twin); "
             "cpu ms: the process's CPU time (all threads), median"]
    header = f"{'workload':<8} {'thr':>3}  {'path':<46} " + " ".join(f"{h:>{w}}" for h, w, _, _ in COLUMNS)
    lines += [header + "  same bits", "-" * (len(header) + 11)]
    for r in data["results"]:
        values = (value(r) for _, _, _, value in COLUMNS)
        numbers = " ".join(format(v, f"{w}{f}") if v is not None else f"{'-':>{w}}"
                           for (_, w, f, _), v in zip(COLUMNS, values, strict=True))
        same = {True: "yes", False: "NO", None: "-"}[r["identical"]]
        lines.append(f"{r['workload']:<8} {r['threads']:>3}  {r['path']:<46} {numbers}  {same}"
                     + (f"  ({r['note']})" if r["note"] else ""))
    return "\n".join(lines)


def save_json(data: dict, path: Path) -> None:
    from ..io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


__all__ = ["WORKLOADS", "BenchContext", "BenchPath", "BenchResult", "format_results", "run_bench", "save_json"]
