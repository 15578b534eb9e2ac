"""The leaky integrator: a non-spiking readout. State ``v``; the output is the potential."""

import torch
from torch import Tensor

from .. import validation
from ..functional import integrate
from .protocol import StatefulLayer


class LeakyIntegratorLayer(StatefulLayer):
    r"""``size`` leaky integrators: :math:`v' = \beta v + x`, and the output is :math:`v'`.

    Args:
        size: neurons per sample (an int or a feature-map shape).
        beta: decay in ``[0, 1]``, scalar or of shape ``size``. Default ``0.9``.
        dtype: dtype of the parameters (floating point).

    Shape:
        - x: ``[batch, *size]``; state ``[v]``; output ``v'``, ``[batch, *size]``.

    Example::

        >>> readout = LeakyIntegratorLayer(2, beta=0.5)
        >>> out, state = readout.step(torch.ones(1, 2), [torch.full((1, 2), 2.0)])
        >>> out
        tensor([[2., 2.]])
    """

    beta: Tensor

    def __init__(self, size: int | tuple[int, ...], *, beta: validation.ParamLike = 0.9,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__(size, ["v"], dtype)
        self._param("beta", beta)

    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        v_next = integrate(x, state[0], self.beta)
        return v_next, [v_next]
