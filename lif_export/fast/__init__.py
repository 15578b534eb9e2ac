"""Fast paths, bit-identical to the reference modules (see the benchmark, ``lif-export bench``).

* :func:`simulate` - forward over a sequence in reused buffers (no autograd);
* :class:`LIFSequenceFunction` - training: forward plus a hand-written backward through time;

``LIFSequence`` uses both automatically in eager mode, and ``SpikingSequential.forward_sequence``
trains each ``LIFLayer`` through the backward (``LIFLayer.train_sequence``).
"""

from .bptt import LIFSequenceFunction
from .simulate import simulate

__all__ = ["LIFSequenceFunction", "simulate"]
