"""Bring your own network: models from snnTorch and Norse as lif_export networks.

* :func:`from_snntorch` - the same spikes as snnTorch's forward pass, bit for bit (eager and TorchScript);
* :func:`from_norse` - Norse's cells through their NIR equations: close, not bit-identical.

NIR graphs in and out: :mod:`lif_export.nir`. Ordinary ``nn.Linear``/``nn.Conv2d`` layers of the
converted networks run in eager PyTorch and TorchScript; :func:`lif_export.network.to_exact` rounds
them to the exact layers for export. The libraries are optional: ``pip install 'lif_export[convert]'``.
"""

from .norse import from_norse
from .snntorch import from_snntorch

__all__ = ["from_norse", "from_snntorch"]
