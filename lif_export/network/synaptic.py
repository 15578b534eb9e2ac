"""Current-based synaptic LIF. State: synaptic current ``i`` and potential ``v``."""

import torch
from torch import Tensor

from .. import validation
from ..functional import integrate, lif_step_unchecked
from .protocol import SpikingLayer


class SynapticLIFLayer(SpikingLayer):
    r"""``size`` current-based LIF neurons: the input charges a synaptic current that the membrane
    integrates.

    .. math::
        i' = \alpha i + x,\qquad u = \beta v + i',\qquad s = \mathbb{1}[u > \vartheta],\qquad
        v' = \text{reset}(u, s)

    Args:
        size: neurons per sample (an int or a feature-map shape).
        alpha: synaptic current decay in ``[0, 1]`` (snnTorch's ``alpha``). Default ``0.8``.
        beta, threshold, v_reset, reset, learn_beta, learn_threshold, surrogate, surrogate_slope, dtype:
            as for :class:`~lif_export.network.LIFLayer`.

    Shape:
        - x: ``[batch, *size]``; state ``[i, v]``; output (spike) ``[batch, *size]``.

    Example::

        >>> layer = SynapticLIFLayer(1, alpha=0.5, beta=0.5)
        >>> state = layer.initial_state(1, torch.float32)
        >>> spike, state = layer.step(torch.ones(1, 1), state)   # i' = 1, u = 1: not above 1
        >>> spike, state = layer.step(torch.ones(1, 1), state)   # i' = 1.5, u = 2: fires
        >>> spike
        tensor([[1.]])
    """

    alpha: Tensor

    def __init__(self, size: int | tuple[int, ...], *, alpha: validation.ParamLike = 0.8,
                 beta: validation.ParamLike = 0.9, threshold: validation.ParamLike = 1.0,
                 v_reset: validation.ParamLike = 0.0, reset: str = "zero", learn_beta: bool = False,
                 learn_threshold: bool = False, dtype: torch.dtype | None = None, **surrogate: object) -> None:
        super().__init__(size, ["i", "v"], beta, threshold, v_reset, reset, learn_beta, learn_threshold, dtype,
                         surrogate)
        self._param("alpha", alpha)

    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        beta, threshold, v_reset = self.neuron_parameters()
        i_next = integrate(x, state[0], self.alpha)
        spike, v_next = lif_step_unchecked(i_next, state[1], beta, threshold, v_reset, self.reset, self.surrogate,
                                           self.surrogate_slope)
        return spike, [i_next, v_next]
