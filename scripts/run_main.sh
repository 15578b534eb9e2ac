#!/usr/bin/env bash
# The main job: set up, export the models into models/, verify them across backends.
#   models/        the default neuron (ONNX + TorchScript, dynamic sizes); extra arguments go to this
#                  `lif-export export` (e.g. --dtype float64 --reset subtract)
#   models/edge/   the same neuron at a fixed size of 128 in every format that keeps every bit on this
#                  machine's runtimes: ONNX, TorchScript, C99, torch.export, AOTInductor
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
lif-export export --out models "$@"
lif-export verify models --summary
lif-export export --out models/edge --features 128 --format onnx --format torchscript --format c --format pt2 \
    --format aoti -q
lif-export verify models/edge --summary
