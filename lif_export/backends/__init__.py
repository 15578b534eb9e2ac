"""Runtimes behind one interface (:class:`Backend`: ``run(x, states) -> named tensors``), found
through :data:`REGISTRY`.

Adding a runtime is one new module here that decorates its factory with ``@register("name")``,
plus its import below.
"""

from . import aoti, c, eager, executorch, fast, numpy_reference, onnxruntime, openvino, pt2, torchscript  # noqa: F401
from .base import REGISTRY, Backend, Context, Tensors
from .eager import EagerSequence

__all__ = ["REGISTRY", "Backend", "Context", "EagerSequence", "Tensors"]
