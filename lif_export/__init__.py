"""lif_export: Leaky Integrate-and-Fire neurons that run bit-identically in eager
PyTorch, TorchScript and ONNX Runtime, exported as step graphs with explicit state.

The normative semantics are in ``docs/semantics.md``.
"""

from .functional import lif_sequence, lif_step
from .modules import LIFCell, LIFNeuron, LIFParameters, LIFSequence
from .surrogate import SURROGATES, surrogate_grad
from .validation import RESETS

__version__ = "0.1.0"

__all__ = [
    "LIFCell",
    "LIFNeuron",
    "LIFParameters",
    "LIFSequence",
    "RESETS",
    "SURROGATES",
    "lif_sequence",
    "lif_step",
    "surrogate_grad",
    "__version__",
]
