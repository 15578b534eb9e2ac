"""Backends behind one interface (:class:`Backend`), found through :data:`REGISTRY`.

Adding a runtime is one new module here that decorates its factory with
``@register("name")``, plus its import below.
"""

from . import eager, fast, network, numpy_reference, onnxruntime, torchscript  # noqa: F401  (registration)
from .base import REGISTRY, Backend, Context, RunResult
from .eager import EagerSequence

__all__ = ["REGISTRY", "Backend", "Context", "EagerSequence", "RunResult"]
