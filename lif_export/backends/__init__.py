"""Runtimes behind one interface (:class:`Backend`: ``run(x, states) -> named tensors``), found
through :data:`REGISTRY`.

Adding a runtime is one new module here that decorates its factory with ``@register("name")``,
plus its import below.
"""

from . import eager, fast, numpy_reference, onnxruntime, torchscript  # noqa: F401  (registration)
from .base import REGISTRY, Backend, Context, Tensors
from .eager import EagerSequence

__all__ = ["REGISTRY", "Backend", "Context", "EagerSequence", "Tensors"]
