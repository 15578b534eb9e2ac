"""Compiling the package's small C sources with the system C compiler, on first use, cached.

A source is compiled once per (source, compiler, flags, CPU) into ``$XDG_CACHE_HOME/lif_export``
(default ``~/.cache/lif_export``) and loaded with :mod:`ctypes`; a compile takes well under a
second. ``-march=native`` tunes the code to this CPU (hence the CPU in the cache key);
``-ffp-contract=off`` keeps every multiply and add separately rounded, so the bits do not
depend on the CPU. Without a C compiler (or with ``LIF_EXPORT_NO_COMPILE=1``) nothing is
compiled and callers fall back to their pure PyTorch path, which gives the same bits.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

#: Optimisation flags, in the order tried: tuned to this CPU, then portable.
FLAG_SETS: tuple[tuple[str, ...], ...] = (("-O3", "-march=native", "-ffp-contract=off"), ("-O3", "-ffp-contract=off"))
SHARED_FLAGS = ("-shared", "-fPIC")
#: The CPU features reported with benchmark results (those that change how fast the kernels run).
REPORTED_FEATURES = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "neon", "asimd", "sve")


@dataclass(frozen=True)
class Compiled:
    """A loaded library, or ``None`` with the reason; ``description`` names the compiler and flags."""

    library: ctypes.CDLL | None
    description: str


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lif_export"


@functools.cache
def cpu_info() -> dict[str, object]:
    """``{"model": str, "features": [the REPORTED_FEATURES this CPU has], "identity": str}`` (Linux
    ``/proc/cpuinfo``; elsewhere the platform's processor string and no features)."""
    model, flags = "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not model:
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = value.strip()
    except OSError:
        pass
    model = model or platform.processor() or platform.machine()
    present = set(flags.split())
    return {"model": model, "features": [f for f in REPORTED_FEATURES if f in present],
            "identity": f"{platform.machine()} {model} {flags}"}


def compiler() -> str | None:
    """The C compiler: ``$CC`` (default ``cc``), else ``gcc``; ``None`` if there is none."""
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")


def _compile(cc: str, source: bytes, name: str, flags: tuple[str, ...]) -> tuple[Path | None, str]:
    """Compile into the cache (atomically, so concurrent processes are safe); ``(path, error)``."""
    key = hashlib.sha256(b"\0".join([source, cc.encode(), " ".join(flags).encode(),
                                     str(cpu_info()["identity"]).encode()])).hexdigest()[:16]
    library = cache_dir() / f"{name}-{key}.so"
    if library.exists():
        return library, ""
    library.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / f"{name}.c"
        src.write_bytes(source)
        out = Path(tmp) / f"{name}.so"
        result = subprocess.run([cc, *flags, *SHARED_FLAGS, str(src), "-o", str(out)], capture_output=True,
                                text=True)
        if result.returncode != 0:
            return None, result.stderr.strip()[:200]
        os.replace(out, library)
    return library, ""


@functools.cache
def load(package: str, source: str) -> Compiled:
    """Compile (once, cached) and load the C file ``source`` shipped in ``package``."""
    if os.environ.get("LIF_EXPORT_NO_COMPILE"):
        return Compiled(None, "not compiled: LIF_EXPORT_NO_COMPILE is set")
    cc = compiler()
    if cc is None:
        return Compiled(None, "not compiled: no C compiler (set CC)")
    text = resources.files(package).joinpath(source).read_bytes()
    error = ""
    for flags in FLAG_SETS:
        path, error = _compile(cc, text, Path(source).stem, flags)
        if path is not None:
            return Compiled(ctypes.CDLL(str(path)), f"{Path(cc).name} {' '.join(flags)}")
    return Compiled(None, f"not compiled: {Path(cc).name} failed: {error}")
