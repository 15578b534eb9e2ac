#!/usr/bin/env bash
# The whole test suite: set up, then pytest (extra arguments go to pytest).
# Set-up builds the C++ runners (plain, and with ASan/UBSan) once, so the cpp tests reuse the
# builds; a failed build is left to those tests to report.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
if command -v cmake >/dev/null 2>&1; then
    echo "run_tests: building the C++ runners (scripts/build_cpp.sh)" >&2
    scripts/build_cpp.sh >/dev/null 2>&1 || echo "run_tests: the C++ build failed; tests/test_cpp.py shows why" >&2
    LIF_SANITIZE=ON scripts/build_cpp.sh -DLIF_CHECK_HEADERS=OFF >/dev/null 2>&1 \
        || echo "run_tests: the sanitizer build failed; tests/test_cpp.py shows why" >&2
fi
python -m pytest "$@"
