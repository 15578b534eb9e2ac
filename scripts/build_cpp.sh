#!/usr/bin/env bash
# Configure and build the C++ runners (cpp/) against the torch and onnxruntime of
# the Python environment on PATH (run scripts/bootstrap.sh first, or activate .venv).
# Reuses the build folder between runs. System packages (cmake, a C++ compiler, npm,
# nlohmann-json3-dev): scripts/install_system_deps.sh.
#
#   BUILD_DIR     where to build (default: cpp/build; cpp/build-asan when LIF_SANITIZE=ON)
#   LIF_SANITIZE  ON: build with AddressSanitizer + UBSan (default: OFF)
#   BUILD_TYPE    the CMake build type (default: Release; none when LIF_SANITIZE=ON: -O0, no -g)
#   JOBS          parallel compile jobs (default: the number of cores)
#
# Further arguments go to the configure step (e.g. -DLIF_MODELS_DIR=models for ctest).
# Prints the build folder as the last line of stdout; everything else goes to stderr.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SANITIZE="${LIF_SANITIZE:-OFF}"
case "$SANITIZE" in
    ON|on|1|TRUE|true|YES|yes) SANITIZE=ON; DEFAULT_DIR="$ROOT/cpp/build-asan"; DEFAULT_TYPE="" ;;
    *) SANITIZE=OFF; DEFAULT_DIR="$ROOT/cpp/build"; DEFAULT_TYPE=Release ;;
esac
BUILD_DIR="${BUILD_DIR:-$DEFAULT_DIR}"
BUILD_TYPE="${BUILD_TYPE-$DEFAULT_TYPE}"
JOBS="${JOBS:-$(nproc)}"

PYTHON="$(command -v python || true)"
if [ -z "$PYTHON" ]; then
    echo "build_cpp.sh: no python on PATH: activate the venv (scripts/bootstrap.sh creates .venv)" >&2
    exit 1
fi
for tool in cmake c++; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "build_cpp.sh: $tool not found: run scripts/install_system_deps.sh (as root)" >&2
        exit 1
    fi
done
found_json=""
include_dirs=(/usr/include /usr/local/include)
IFS=: read -ra prefixes <<< "${CMAKE_PREFIX_PATH:-}"
for prefix in "${prefixes[@]}"; do include_dirs+=("$prefix/include"); done
for dir in "${include_dirs[@]}"; do
    if [ -f "$dir/nlohmann/json.hpp" ]; then found_json="$dir"; break; fi
done
if [ -z "$found_json" ] && [ -z "${nlohmann_json_DIR:-}" ]; then
    echo "build_cpp.sh: nlohmann/json.hpp not found: run scripts/install_system_deps.sh (as root) to install" \
         "nlohmann-json3-dev, or set nlohmann_json_DIR" >&2
    exit 1
fi

cmake -S "$ROOT/cpp" -B "$BUILD_DIR" -DPython_EXECUTABLE="$PYTHON" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" \
    -DLIF_SANITIZE="$SANITIZE" "$@" >&2
cmake --build "$BUILD_DIR" -j "$JOBS" >&2
echo "$BUILD_DIR"
