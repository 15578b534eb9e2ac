"""Recurrent LIF: each neuron also receives the layer's previous spikes through a weight matrix."""

import torch
from torch import Tensor

from .. import validation
from ..errors import InvalidValueError
from ..functional import fire_and_reset, integrate
from .exact import ExactLinear
from .protocol import SpikingLayer


class RecurrentLIFLayer(SpikingLayer):
    r"""``size`` LIF neurons with all-to-all recurrent weights :math:`W` (an :class:`ExactLinear`,
    so the recurrent current is the same bits on every backend).

    .. math::
        u = (\beta v + x) + W s,\qquad s' = \mathbb{1}[u > \vartheta],\qquad v' = \text{reset}(u, s')

    Args:
        size: number of neurons (an int: the recurrence is all-to-all).
        beta, threshold, v_reset, reset, learn_beta, learn_threshold, surrogate, surrogate_slope, dtype:
            as for :class:`~lif_export.network.LIFLayer`.

    Shape:
        - x: ``[batch, size]``; state ``[v, s]`` (``s`` the previous spikes); output ``[batch, size]``.

    Example::

        >>> layer = RecurrentLIFLayer(4)
        >>> spike, state = layer.step(torch.rand(2, 4) * 2, layer.initial_state(2, torch.float32))
    """

    def __init__(self, size: int, *, beta: validation.ParamLike = 0.9, threshold: validation.ParamLike = 1.0,
                 v_reset: validation.ParamLike = 0.0, reset: str = "zero", learn_beta: bool = False,
                 learn_threshold: bool = False, dtype: torch.dtype | None = None, **surrogate: object) -> None:
        if isinstance(size, bool) or not isinstance(size, int):
            raise InvalidValueError(f"size must be a positive integer for the recurrent LIF (all-to-all), got {size!r}")
        super().__init__(size, ["v", "s"], beta, threshold, v_reset, reset, learn_beta, learn_threshold, dtype,
                         surrogate)
        self.recurrent = ExactLinear(size, size, bias=False)

    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        beta, threshold, v_reset = self.neuron_parameters()
        v, s = state[0], state[1]
        u = integrate(x, v, beta) + self.recurrent(s)
        hard, v_next = fire_and_reset(u, threshold, v_reset, self.reset)
        return self.with_surrogate(hard, u, threshold), [v_next, hard]
