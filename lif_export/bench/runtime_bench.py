"""W2 (per-step latency, one sample of 128 neurons) on ExecuTorch and OpenVINO, for ``lif-export bench``.

* :func:`w2_paths`: the Python paths, timed like every other W2 path and compared bit for bit with
  the workload's reference: each ExecuTorch step program (CPU kernels; XNNPACK) called once per step
  with the state fed back, and the stateful OpenVINO IR (the state stays in the model).
* :func:`unavailable_rows`: a row per runtime whose package is missing, naming the install command.
* :func:`cpp_w2`: ``lif_executorch_runner`` / ``lif_openvino_runner --bench`` when built, like the
  ONNX Runtime and libtorch runners' rows.

The artifacts are the default neuron's, exported once per process into a temporary folder per runtime.
``python -m lif_export.bench.runtime_bench`` prints the rows on their own.
"""

from __future__ import annotations

import functools
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..export import export
from ..export.manifest import load_manifest
from .paths import BenchContext, BenchPath, BenchResult, cpp_rows, scratch_dir

#: runtime -> (import name, export format, install command)
RUNTIMES = {
    "executorch": ("executorch.runtime", "executorch", "pip install 'lif_export[executorch]'"),
    "openvino": ("openvino", "openvino", "pip install 'lif_export[openvino]'"),
}
#: C++ runner -> the runtime it needs
CPP_RUNNERS = {"lif_executorch_runner": "executorch", "lif_openvino_runner": "openvino"}


def installed(runtime: str) -> bool:
    return importlib.util.find_spec(RUNTIMES[runtime][0].split(".")[0]) is not None


@functools.cache
def runtime_models(runtime: str) -> Path:
    """The default neuron exported once per process in ``runtime``'s format, in a folder of its own
    (a C++ runner reads the whole manifest)."""
    folder = scratch_dir(f"lif-bench-{runtime}-")
    export(out_dir=folder, formats=[RUNTIMES[runtime][1]])
    return folder


def _executorch_path(ctx: BenchContext, models: Path, entry: dict, label: str) -> BenchPath:
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(str(models / entry["file"])).load_method(entry["method"])
    x = ctx.x.contiguous()

    def run() -> torch.Tensor:
        v, spikes = torch.zeros(ctx.shape), torch.empty_like(x)
        for t in range(ctx.steps):
            s, v_next = method.execute([x[t], v])
            spikes[t] = s
            v = v_next.clone()  # the output lives in memory the next call reuses
        return spikes

    return BenchPath(f"ExecuTorch step, {label} (Python)", run)


def _openvino_path(ctx: BenchContext, models: Path, entry: dict) -> BenchPath:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(models / entry["file"])), "CPU",
                                  {**entry["runtime_config"], "INFERENCE_NUM_THREADS": ctx.threads, "NUM_STREAMS": 1})
    request = compiled.create_infer_request()
    xn = np.ascontiguousarray(ctx.x.numpy())

    def run() -> np.ndarray:
        request.reset_state()
        spikes = np.empty_like(xn)
        for t in range(ctx.steps):
            request.set_input_tensor(ov.Tensor(xn[t], shared_memory=True))
            request.infer()
            spikes[t] = request.get_output_tensor(0).data
        return spikes

    return BenchPath("OpenVINO stateful IR, f32 (Python)", run)


def w2_paths(ctx: BenchContext) -> list[BenchPath]:
    """The W2 paths of the installed runtimes (none for a missing one: see :func:`unavailable_rows`)."""
    paths = []
    if installed("executorch"):
        models = runtime_models("executorch")
        entries = {a["name"]: a for a in load_manifest(models)["artifacts"]}
        paths.append(_executorch_path(ctx, models, entries["executorch_step"], "CPU kernels"))
        note = entries["executorch_xnnpack_step"].get("deviation", "")
        path = _executorch_path(ctx, models, entries["executorch_xnnpack_step"], "XNNPACK")
        path.note = f"manifest deviation: {note}" if note else ""
        paths.append(path)
    if installed("openvino"):
        models = runtime_models("openvino")
        paths.append(_openvino_path(ctx, models, load_manifest(models)["artifacts"][0]))
    return paths


def unavailable_rows(workload: str = "W2") -> list[BenchResult]:
    return [BenchResult(workload, f"{runtime} (not installed)", 1, None, None, note=f"skipped: {RUNTIMES[runtime][2]}")
            for runtime in RUNTIMES if not installed(runtime)]


def cpp_w2(ctx: BenchContext) -> list[BenchResult]:
    """The C++ runners' own per-step timing (``--bench STEPS --shape 1,128``), one row per step artifact."""
    rows = []
    for runner, runtime in CPP_RUNNERS.items():
        if installed(runtime):
            rows += cpp_rows(ctx, runner, runtime_models(runtime))
        else:
            rows.append(BenchResult("W2", f"C++ {runner}", 1, None, None, note=f"skipped: {RUNTIMES[runtime][2]}"))
    return rows


def main(steps: int = 1000, shape: tuple[int, ...] = (1, 128), rounds: int = 5) -> None:
    """Print the W2 rows of this module (median per-step latency in microseconds)."""
    torch.set_num_threads(1)
    x = (torch.rand(steps, *shape, generator=torch.Generator().manual_seed(0)) * 0.6).contiguous()
    ctx = BenchContext(steps, shape, x, Path(tempfile.gettempdir()), 1, rounds)
    for path in w2_paths(ctx):
        path.run()  # warm-up
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            path.run()
            times.append(time.perf_counter() - start)
        print(f"{path.name:<46} {statistics.median(times) * 1e6 / steps:8.2f} us/step  (min "
              f"{min(times) * 1e6 / steps:.2f}){'  ' + path.note if path.note else ''}")
    for row in cpp_w2(ctx) + unavailable_rows():
        us = f"{row.us_per_step:8.2f} us/step" if row.us_per_step is not None else f"{'-':>8}"
        print(f"{row.path:<46} {us}  {row.note}")


if __name__ == "__main__":
    main()
