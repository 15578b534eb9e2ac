"""Spiking networks with explicit state: layers, neuron models, the container.

Neuron models (one file each, all under the state protocol of :mod:`.protocol`):

* :class:`LIFLayer` - ``docs/semantics.md``'s LIF; state ``v``.
* :class:`SynapticLIFLayer` - current-based LIF; state ``i``, ``v``.
* :class:`AdaptiveLIFLayer` - adaptive threshold; state ``v``, ``a``.
* :class:`RecurrentLIFLayer` - LIF with recurrent weights; state ``v``, ``s``.
* :class:`LeakyIntegratorLayer` - non-spiking readout; state ``v``.

:class:`ExactLinear` and :class:`ExactConv2d` are the bit-identical linear and convolution
layers; :class:`SpikingSequential` composes them with ``Flatten``, ``MaxPool2d`` and ``Dropout`` (eval).
:func:`to_exact` turns ordinary ``Linear`` and ``Conv2d`` layers into them, reporting the rounding.
"""

from .adaptive import AdaptiveLIFLayer
from .convert import to_exact
from .exact import ExactConv2d, ExactLinear
from .leaky import LeakyIntegratorLayer
from .lif import LIFLayer
from .protocol import StatefulLayer, Stateless
from .recurrent import RecurrentLIFLayer
from .sequential import SpikingSequential, StatefulNetwork
from .synaptic import SynapticLIFLayer

__all__ = [
    "AdaptiveLIFLayer",
    "ExactConv2d",
    "ExactLinear",
    "LIFLayer",
    "LeakyIntegratorLayer",
    "RecurrentLIFLayer",
    "SpikingSequential",
    "StatefulLayer",
    "StatefulNetwork",
    "Stateless",
    "SynapticLIFLayer",
    "to_exact",
]
