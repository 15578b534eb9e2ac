#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install lif_export
# with its test extras. Sourced by run_main.sh and run_tests.sh; safe to rerun:
# it reinstalls only when pyproject.toml changed.
#
#   LIF_EXPORT_VENV   where the venv lives (default: .venv in the repository)
#   PYTHON            the interpreter to create it with (default: python3.11, else python3)
#   TORCH_SPEC        the torch requirement installed first (default: torch==2.13.0,
#                     the CPU build this project is developed and tested with)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LIF_EXPORT_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating virtual environment $VENV with $("$PYTHON" --version)" >&2
    "$PYTHON" -m venv "$VENV"
fi

STAMP="$VENV/.lif_export-installed"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1) $TORCH_SPEC"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "bootstrap: installing $TORCH_SPEC and lif_export[test] into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$TORCH_SPEC"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[test]"
    echo "$WANT" > "$STAMP"
fi

export PATH="$VENV/bin:$PATH"
