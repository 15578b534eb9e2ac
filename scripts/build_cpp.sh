#!/usr/bin/env bash
# Configure and build the C++ runners (cpp/) against the torch and onnxruntime of
# the Python environment on PATH (run scripts/bootstrap.sh first, or activate .venv).
# Reuses the build folder between runs.
#
#   BUILD_DIR   where to build (default: cpp/build)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/cpp/build}"
PYTHON="$(command -v python)"
cmake -S "$ROOT/cpp" -B "$BUILD_DIR" -DPython_EXECUTABLE="$PYTHON" -DCMAKE_BUILD_TYPE=Release >&2
cmake --build "$BUILD_DIR" -j "$(nproc)" >&2
echo "$BUILD_DIR"
