#!/usr/bin/env bash
# The main job: set up, export the models into models/, verify them across backends.
# Extra arguments go to `lif-export export` (e.g. --dtype float64 --reset subtract).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
lif-export export --out models "$@"
lif-export verify models --summary
