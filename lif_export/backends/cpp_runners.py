"""Where the C++ runners of ``cpp/`` are (built by ``scripts/build_cpp.sh``)."""

from __future__ import annotations

import os
from pathlib import Path

#: The runners ``scripts/build_cpp.sh`` builds.
RUNNERS = ("lif_ort_runner", "lif_torch_runner")


def cpp_build_dir() -> Path:
    """Where scripts/build_cpp.sh puts the runners (``LIF_EXPORT_CPP_BUILD`` overrides)."""
    return Path(os.environ.get("LIF_EXPORT_CPP_BUILD") or Path(__file__).resolve().parents[2] / "cpp" / "build")
