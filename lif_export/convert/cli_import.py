"""``lif-export import FILE.nir --dt DT --out DIR``: a NIR graph read into exact layers and exported in
every format the pipeline has (with golden vectors and the manifest, like ``lif-export export``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InvalidValueError
from ..export.formats.nir import import_nir as nir_package
from ..export.pipeline import ExportResult
from ..nir import from_nir

#: The formats an imported network is written in: every format that expresses the exact layers NIR imports
#: become (OpenVINO has no float64 sums for ExactLinear) and compiles in seconds (AOTInductor and ExecuTorch
#: compile for a minute or more: export those with ``lif-export export --network``).
IMPORT_FORMATS = ("onnx", "torchscript", "c", "nir", "pt2")


def import_nir(path: str | Path, dt: float | None, out_dir: str | Path, method: str | None = None,
               report: Callable[[str], None] | None = print, exact: bool = True) -> ExportResult:
    """Read ``path`` at the time step ``dt`` (``None``: the graph's own ``dt`` metadata) with ``method``
    (``"euler"``/``"exp"``; ``None``: the graph's, else Euler), round its weights to the exact grid
    (each layer's rounding error reported; ``exact=False`` keeps them as written) and export it into
    ``out_dir``. A network with ordinary layers left (``exact=False``, or pooling) is exported in the float
    tier (docs/networks.md), which the C library does not write."""
    from ..export import export_network
    from ..export.float_tier import float_layers

    nir = nir_package()
    graph = nir.read(str(path))
    net = from_nir(graph, dt, method, exact=exact, report=report)
    formats: tuple[str, ...] = IMPORT_FORMATS
    if float_layers(net):
        formats = tuple(f for f in IMPORT_FORMATS if f != "c")
        if report is not None:
            names = ", ".join(f"{i} ({kind})" for i, kind in float_layers(net))
            report(f"float tier (ordinary layers {names}): writing {', '.join(formats)}; the C library writes "
                   "only the exact tier")
    inputs = [n for n in graph.nodes.values() if isinstance(n, nir.Input)]
    shape = np.asarray(inputs[0].input_type.get("input") if inputs else [], dtype=np.int64).ravel()
    if shape.size == 0:
        raise InvalidValueError(f"{path}: the graph's Input node has no shape, so the exported input size is unknown")
    return export_network(net, tuple(int(d) for d in shape), out_dir, formats=formats, report=report)
