"""The native reference loop (native_lif.c), compiled here on first use and cached."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

FLAGS = ["-O3", "-ffp-contract=off", "-shared", "-fPIC"]


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lif_export"


def load_native() -> tuple[ctypes.CDLL | None, str]:
    """``(library, description)``; ``library`` is ``None`` when no C compiler is available."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        return None, "skipped: no C compiler (set CC) to build the native reference"
    source = resources.files("lif_export.bench").joinpath("native_lif.c").read_bytes()
    key = hashlib.sha256(source + " ".join([compiler, *FLAGS]).encode()).hexdigest()[:16]
    library = _cache_dir() / f"native_lif-{key}.so"
    if not library.exists():
        library.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "native_lif.c"
            src.write_bytes(source)
            out = Path(tmp) / "native_lif.so"
            result = subprocess.run([compiler, *FLAGS, str(src), "-o", str(out)], capture_output=True, text=True)
            if result.returncode != 0:
                return None, f"skipped: {compiler} failed: {result.stderr.strip()[:200]}"
            os.replace(out, library)
    lib = ctypes.CDLL(str(library))
    f = ctypes.POINTER(ctypes.c_float)
    lib.lif_zero_f32.argtypes = [f, f, f, ctypes.c_long, ctypes.c_long, ctypes.c_float, ctypes.c_float, ctypes.c_float]
    lib.lif_zero_f32.restype = None
    return lib, f"{Path(compiler).name} {' '.join(FLAGS[:2])}"


def run_native(lib: ctypes.CDLL, x: np.ndarray, spikes: np.ndarray, v: np.ndarray,
               beta: float, threshold: float, v_reset: float) -> None:
    """``x[T, ...]`` float32 C-contiguous; ``spikes`` like ``x``; ``v`` the state, updated in place."""
    f = ctypes.POINTER(ctypes.c_float)
    lib.lif_zero_f32(x.ctypes.data_as(f), spikes.ctypes.data_as(f), v.ctypes.data_as(f), x.shape[0],
                     int(np.prod(x.shape[1:])), beta, threshold, v_reset)
