"""Adaptive LIF: the threshold rises by ``b`` with each spike and decays back. State ``v`` and ``a``."""

import torch
from torch import Tensor

from .. import validation
from ..errors import InvalidValueError
from ..functional import fire_and_reset, integrate
from .protocol import SpikingLayer


class AdaptiveLIFLayer(SpikingLayer):
    r"""``size`` LIF neurons whose threshold adapts to their own firing.

    .. math::
        u = \beta v + x,\qquad \vartheta_t = \vartheta + a,\qquad s = \mathbb{1}[u > \vartheta_t],\qquad
        v' = \text{reset}(u, s, \vartheta_t),\qquad a' = \rho a + b s

    The subtract reset subtracts the effective threshold :math:`\vartheta_t`.

    Args:
        size: neurons per sample (an int or a feature-map shape).
        beta, threshold, v_reset, learn_beta, learn_threshold, surrogate, surrogate_slope, dtype:
            as for :class:`~lif_export.network.LIFLayer`.
        reset: ``"zero"`` (default) or ``"subtract"`` (``"none"`` would never let ``a`` matter).
        rho: adaptation decay in ``[0, 1]``. Default ``0.95``.
        b: threshold jump per spike, finite and ``>= 0``. Default ``0.2``.

    Shape:
        - x: ``[batch, *size]``; state ``[v, a]``; output (spike) ``[batch, *size]``.

    Example::

        >>> layer = AdaptiveLIFLayer(1, beta=0.0, rho=1.0, b=0.5)
        >>> state = layer.initial_state(1, torch.float32)
        >>> s1, state = layer.step(torch.full((1, 1), 1.2), state)  # fires; a becomes 0.5
        >>> s2, state = layer.step(torch.full((1, 1), 1.2), state)  # 1.2 is not above 1.5
        >>> s1.item(), s2.item()
        (1.0, 0.0)
    """

    rho: Tensor
    b: Tensor

    def __init__(self, size: int | tuple[int, ...], *, beta: validation.ParamLike = 0.9,
                 threshold: validation.ParamLike = 1.0, v_reset: validation.ParamLike = 0.0, reset: str = "zero",
                 rho: validation.ParamLike = 0.95, b: validation.ParamLike = 0.2, learn_beta: bool = False,
                 learn_threshold: bool = False, dtype: torch.dtype | None = None, **surrogate: object) -> None:
        if reset == "none":
            raise InvalidValueError("reset must be 'zero' or 'subtract' for the adaptive LIF, got 'none'")
        super().__init__(size, ["v", "a"], beta, threshold, v_reset, reset, learn_beta, learn_threshold, dtype,
                         surrogate)
        self._param("rho", rho)
        self._param("b", b)

    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        beta, threshold, v_reset = self.neuron_parameters()
        v, a = state[0], state[1]
        u = integrate(x, v, beta)
        theta = threshold + a
        spike, v_next = fire_and_reset(u, theta, v_reset, self.reset)
        a_next = self.rho * a + self.b * spike
        spike = self.with_surrogate(spike, u, threshold + a.detach())  # no gradient into a
        return spike, [v_next, a_next]
