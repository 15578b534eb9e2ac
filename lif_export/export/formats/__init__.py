"""Export formats: one module per format, each planning its artifacts for an
:class:`~lif_export.export.model.ExportModel` (see :mod:`.base`). A format that writes graphs
layer by layer keeps a registry ``{layer type -> emitter}`` (``onnx.EMITTERS``).

Adding a format is one new module here and one line in :data:`FORMATS`.
"""

from collections.abc import Callable

from . import aoti, c, executorch, nir, onnx, openvino, pt2, torchscript
from .base import DEFAULT_OPSET, Artifact, ExportOptions

#: Format name -> ``artifacts(model, options) -> list[Artifact]``, in the order the files are written.
FORMATS: dict[str, Callable[..., list[Artifact]]] = {
    "onnx": onnx.artifacts,
    "torchscript": torchscript.artifacts,
    "pt2": pt2.artifacts,
    "aoti": aoti.artifacts,
    "c": c.artifacts,
    "nir": nir.artifacts,
    "executorch": executorch.artifacts,
    "openvino": openvino.artifacts,
}

__all__ = ["DEFAULT_OPSET", "FORMATS", "Artifact", "ExportOptions"]
