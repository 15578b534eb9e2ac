"""The AOTInductor format (``aoti``): the step's ExportedProgram (:mod:`.pt2`) compiled ahead of time
into a ``.pt2`` package of native code, run by ``torch._inductor.aoti_load_package`` in Python and
``torch::inductor::AOTIModelPackageLoader`` in C++ (``cpp/aoti_runner.cpp``).

    Step:      run(x[batch, *F], *states)       -> [output, *next states]
    Sequence:  run(x[time, batch, *F], *states) -> [output[time, ...], *final states, *traces[time, ...]]

The sequence is the pt2 sequence program (``scan`` under a ``cond`` for ``T = 0``), compiled for
every ``T`` and batch: inductor lowers the ``scan`` to a ``while_loop`` that writes each step into
preallocated results (``decompose_scan_to_while_loop``, torch 2.13). It sizes them from the scan's
own symbolic-int inputs only, so the scan body reads the batch and feature sizes from ``x`` outside
it (:class:`~.pt2.FlatSequence`); otherwise compiling fails with ``KeyError: s<n>``.

Inductor generates C++ and compiles it with the host's compiler, so the arithmetic is what the
compiler makes of it. :data:`INDUCTOR_CONFIGS` pins the settings that decide it, whatever the
environment says; above all ``-ffp-contract=off``: with contraction, ``beta * v + x`` becomes one
fused multiply-add, which ``docs/semantics.md`` forbids (a test compiles the step with contraction
and shows that ``verify`` catches it). Inductor also always passes ``-fno-signed-zeros`` (no setting
turns it off); none of the step's operations is one GCC may then change (no add of a constant
zero), and ``verify``'s signed-zero cases check it. :data:`DECOMPOSITIONS` rewrites the operations
whose compiled form returns other bits: ``clamp`` of a NaN (in the exact linear layers), and ``add``
of two NaNs (``beta * v + x`` with ``v`` and ``x`` NaN: eager keeps ``x``'s; ``verify --full``'s
500-step ``special_values`` case has it).
A package is native code for this machine's CPU (its vector ISA, e.g. AVX-512) and torch version.

Compiling takes tens of seconds, so packages are cached in ``~/.cache/lif_export/aoti/`` (or under
``$XDG_CACHE_HOME``), keyed by the sha256 of the serialized step program, the rewrites, the
settings with the embedded manifest entry, the torch version, the vector ISA and the compiler.
The cache keeps at most ``$LIF_EXPORT_AOTI_CACHE_MB`` MiB (default 1024; a package is 1-2 MiB):
after each compile the least recently used packages beyond it are removed.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import io
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor
from torch.export import ExportedProgram

from ...errors import InvalidValueError
from ..manifest import EMBEDDED_KEY, ArtifactEntry
from ..model import ExportModel
from . import pt2
from .base import Artifact, ExportOptions, embedded_manifest, model_io

#: Inductor settings every package is compiled with (``torch._inductor.config`` names).
INDUCTOR_CONFIGS: dict[str, object] = {
    # -ffp-contract=off: beta*v + x stays a multiply and an add (no fused multiply-add).
    "cpp.enable_floating_point_contract_flag": "off",
    # -fno-unsafe-math-optimizations: no reassociation, no reciprocal for a division.
    "cpp.enable_unsafe_math_opt_flag": False,
    # Kernels run on the calling thread: no OpenMP region per kernel (a step is small), and the
    # package does not depend on the compiling process's thread count.
    "cpp.threads": 1,
}

aten = torch.ops.aten

#: Key of the settings in a package's metadata (beside the manifest entry, :data:`EMBEDDED_KEY`).
CONFIGS_KEY = "lif_export_inductor_configs.json"


def _clamp_keeping_nan(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:
    """``clamp`` that returns a NaN input itself, payload and sign included, as eager ``clamp`` does.

    Inductor lowers ``clamp`` to its vectorized ``maximum``/``minimum``, which return an all-ones
    NaN (``0xffff...``) for any NaN; the select puts the input's own NaN back.
    """
    clamped = x if min is None else aten.clamp_min.default(x, min)
    clamped = clamped if max is None else aten.clamp_max.default(clamped, max)
    return aten.where.self(aten.isnan.default(x), x, clamped)


def _add_keeping_second_nan(a: Tensor, b: Tensor, *, alpha: float = 1) -> Tensor:
    """``a + b`` that returns ``b``'s NaN when both are NaN, as eager ``add`` does on x86.

    Eager PyTorch's ``a + b`` returns ``b``'s NaN (both dtypes, any length, measured with torch 2.13 on
    x86); the compiled ``a + b`` returns the first operand's. Where ``b`` is NaN this returns
    ``b + b`` (``b`` quieted, in either operand order); elsewhere at most one operand of ``a + b`` is
    NaN. ``x - (-y)`` is ``x + y``, bit for bit (``sub``, because an ``add`` would be rewritten
    again); the sum stays a plain ``a + b``, so a compiler may still contract a product into it
    (which :data:`INDUCTOR_CONFIGS` forbids, and the contraction test shows).
    """
    if alpha != 1:
        raise NotImplementedError(f"alpha must be 1 for the aoti format's add, got {alpha!r}")
    minus_b = aten.neg.default(b)
    total = aten.sub.Tensor(a, minus_b)
    if not b.is_floating_point():
        return total
    return aten.where.self(aten.isnan.default(b), aten.sub.Tensor(b, minus_b), total)


#: Rewrites applied to the ExportedProgram before it is compiled: same results in eager PyTorch,
#: and the same bits once compiled.
DECOMPOSITIONS: dict[torch._ops.OpOverload, Callable[..., Tensor]] = {
    aten.clamp.default: _clamp_keeping_nan, aten.add.Tensor: _add_keeping_second_nan}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lif_export" / "aoti"


#: The environment variable that sets the package cache's size limit in MiB.
CACHE_LIMIT_VARIABLE = "LIF_EXPORT_AOTI_CACHE_MB"
DEFAULT_CACHE_LIMIT_MB = 1024
#: The name of a cached package (its key); nothing else in the folder is ever removed.
_PACKAGE_NAME = re.compile(r"[0-9a-f]{64}\.pt2")


def cache_limit_bytes() -> int:
    """``$LIF_EXPORT_AOTI_CACHE_MB`` (a number of MiB, at least 0) in bytes, or the default's."""
    raw = os.environ.get(CACHE_LIMIT_VARIABLE, "").strip()
    try:
        megabytes = float(raw) if raw else float(DEFAULT_CACHE_LIMIT_MB)
    except ValueError:
        megabytes = math.nan
    if not 0 <= megabytes < math.inf:
        raise InvalidValueError(f"${CACHE_LIMIT_VARIABLE} must be a size in MiB (a number >= 0), got {raw!r}")
    return int(megabytes * 2**20)


def evict_packages(keep: Path) -> list[Path]:
    """Remove the least recently used cached packages (by modification time: a cache hit touches its
    package) while the cache holds more than :func:`cache_limit_bytes`; never ``keep``, never a file
    not named like a package. Returns the removed paths."""
    packages = []
    for path in cache_dir().iterdir():
        if _PACKAGE_NAME.fullmatch(path.name) and path != keep:
            try:
                info = path.stat()
            except FileNotFoundError:  # removed meanwhile by another process
                continue
            packages.append((info.st_mtime, info.st_size, path))
    total = keep.stat().st_size + sum(size for _, size, _ in packages)
    limit, removed = cache_limit_bytes(), []
    for _, size, path in sorted(packages, key=lambda item: item[0]):
        if total <= limit:
            break
        path.unlink(missing_ok=True)
        total -= size
        removed.append(path)
    return removed


@functools.cache
def toolchain() -> str:
    """What else decides the generated code: torch, the CPU's vector ISA, the C++ compiler.
    Raises ``RuntimeError`` when there is no C++ compiler."""
    from torch._inductor import cpp_builder, cpu_vec_isa

    try:
        compiler = cpp_builder.get_cpp_compiler()
    except Exception as err:  # inductor's own error type for a missing compiler
        raise RuntimeError(f"the aoti format compiles C++ and found no compiler ({err}): install g++ "
                           "(scripts/install_system_deps.sh) or name one in $CXX") from None
    return (f"torch {torch.__version__}; isa {cpu_vec_isa.pick_vec_isa()}; "
            f"{cpp_builder.get_compiler_version_info(compiler)}")


def package_key(program: ExportedProgram, configs: dict) -> str:
    """sha256 of everything that goes into a package: the program, the rewrites, the settings
    (metadata included) and the toolchain."""
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    digest = hashlib.sha256(buffer.getvalue())
    digest.update("".join(inspect.getsource(rewrite) for rewrite in DECOMPOSITIONS.values()).encode())
    digest.update(json.dumps(configs, sort_keys=True).encode())
    digest.update(toolchain().encode())
    return digest.hexdigest()


def compile_package(program: ExportedProgram, metadata: dict[str, str]) -> Path:
    """The package of ``program`` (rewritten by :data:`DECOMPOSITIONS`) compiled with
    :data:`INDUCTOR_CONFIGS` and ``metadata``: from the cache, or compiled now (tens of seconds)
    and cached."""
    configs = {**INDUCTOR_CONFIGS,
               "aot_inductor.metadata": {**metadata, CONFIGS_KEY: json.dumps(INDUCTOR_CONFIGS, sort_keys=True)}}
    cached = cache_dir() / f"{package_key(program, configs)}.pt2"
    if cached.is_file():
        os.utime(cached)  # recently used: the last to be evicted
        return cached
    cache_limit_bytes()  # a bad setting is refused before tens of seconds of compiling, not after
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.parent, prefix=".compiling-") as tmp:
        built = Path(tmp) / "package.pt2"
        torch._inductor.aoti_compile_and_package(program.run_decompositions(DECOMPOSITIONS),
                                                 package_path=str(built), inductor_configs=configs)
        os.replace(built, cached)  # atomic: a concurrent compile of the same key writes the same package
    evict_packages(keep=cached)
    return cached


def _writer(program: ExportedProgram, entry: ArtifactEntry) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        shutil.copyfile(compile_package(program, {EMBEDDED_KEY: embedded_manifest(entry)}), folder / entry["file"])

    return write


#: The programs compiled, each the pt2 program of that kind.
KINDS = ("step", "sequence")


def artifacts(model: ExportModel, options: ExportOptions) -> list[Artifact]:
    """``<prefix>_step_aoti.pt2`` and ``<prefix>_sequence_aoti.pt2``; traced here, compiled (or found in
    the cache) when written."""
    toolchain()  # no compiler: refuse before anything is written
    planned = []
    for kind in KINDS:
        entry: ArtifactEntry = {"name": f"aoti_{kind}", "file": f"{model.prefix}_{kind}_aoti.pt2", "format": "aoti",
                                "kind": kind, "method": "run", "calling_convention": "flat",
                                **model_io(model, kind == "sequence")}
        planned.append(Artifact(entry, _writer(pt2.export_program(model, kind), entry)))
    return planned


def load(path: Path, single_threaded: bool = False) -> tuple[Callable, dict, dict]:
    """``(callable (x, *states) -> [output, *next states], embedded manifest entry, inductor settings)``."""
    runner = torch._inductor.aoti_load_package(str(path), run_single_threaded=single_threaded)
    metadata = runner.get_metadata()
    return runner, json.loads(metadata.get(EMBEDDED_KEY, "{}")), json.loads(metadata.get(CONFIGS_KEY, "{}"))
