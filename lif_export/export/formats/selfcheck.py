"""An artifact run at export on the catalogue's input cases against eager PyTorch, bit for bit.

Formats whose runtime may change bits on its own (a delegate that flushes subnormals, a plugin
that loads states through its own conversion) are still written, but never silently: the export
runs the written artifact through its backend (:mod:`lif_export.backends`) on every input case
that applies to the model (:mod:`lif_export.cases`, the short runs ``lif-export verify`` uses) and
records the first difference in the artifact's manifest entry as ``"deviation"``. ``lif-export
verify`` reports the same difference again, row by row.
"""

from __future__ import annotations

from ...backends.base import Backend
from ...cases import cases_for
from ...conformance.compare import compare
from ..manifest import ArtifactEntry
from ..model import ExportModel


def first_deviation(model: ExportModel, backend: Backend) -> str | None:
    """``"case <name>: <first difference>"`` for the first input case whose outputs or states
    differ from eager PyTorch by a bit (or whose run raises), ``None`` when all are identical."""
    signature = model.signature()
    for case in cases_for(signature):
        x, states = case.build(signature)
        try:
            comparison = compare(backend.name, case.name, model.reference(x, states), backend.run(x, states))
        except Exception as err:
            return f"case {case.name}: the run raised {type(err).__name__}: {err}"
        if not comparison.ok:
            return f"case {case.name}: {comparison.first_difference or 'outputs differ'}"
    return None


def record_deviation(model: ExportModel, backend: Backend, entry: ArtifactEntry) -> None:
    """Run the just-written artifact behind ``backend`` on the input cases; its first difference from eager
    PyTorch, if any, becomes the manifest entry's ``"deviation"`` (reported by verify, never hidden)."""
    deviation = first_deviation(model, backend)
    if deviation is not None:
        entry["deviation"] = deviation
