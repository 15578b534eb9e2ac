#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install lif_export with
# the extras the test suite uses, plus (as root) the Debian packages its tests need.
# Sourced by run_main.sh and run_tests.sh; safe to rerun: pip runs again only when
# pyproject.toml or the settings below changed.
#
#   LIF_EXPORT_VENV         where the venv lives (default: .venv in the repository)
#   PYTHON                  the interpreter to create it with (default: python3.11, else python3)
#   TORCH_SPEC              the torch requirement installed first (default: torch==2.13.0,
#                           the CPU build this project is developed and tested with)
#   LIF_EXPORT_EXTRAS       the extras installed with the package (default: test,all:
#                           every runtime and converter, so that every test runs)
#   LIF_EXPORT_SYSTEM_DEPS  1 (default): run scripts/install_system_deps.sh when root
#                           (compilers, qemu, ...); 0: skip it (tests needing them skip)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LIF_EXPORT_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
EXTRAS="${LIF_EXPORT_EXTRAS:-test,all}"

if [ "${LIF_EXPORT_SYSTEM_DEPS:-1}" = 1 ] && [ -f "$ROOT/scripts/install_system_deps.sh" ]; then
    if [ "$(id -u)" = 0 ]; then
        bash "$ROOT/scripts/install_system_deps.sh" \
            || echo "bootstrap: some system packages could not be installed; the tests that need them skip and say why" >&2
    else
        echo "bootstrap: not root, so scripts/install_system_deps.sh is skipped; tests that need its tools skip" >&2
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating virtual environment $VENV with $("$PYTHON" --version)" >&2
    "$PYTHON" -m venv "$VENV"
fi

STAMP="$VENV/.lif_export-installed"
WANT="$(sha256sum < "$ROOT/pyproject.toml" | cut -d' ' -f1) $TORCH_SPEC $EXTRAS"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "bootstrap: installing $TORCH_SPEC and lif_export[$EXTRAS] into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$TORCH_SPEC"
    # The torch just installed is a constraint: no extra may replace it with another build.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$ROOT[$EXTRAS]" \
        "$TORCH_SPEC"
    # Norse declares torchvision, whose newest release pins another torch; it imports without it.
    case ",$EXTRAS," in *,all,*|*,convert,*)
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "norse>=1.1" ;;
    esac
    echo "$WANT" > "$STAMP"
fi

export PATH="$VENV/bin:$PATH"
