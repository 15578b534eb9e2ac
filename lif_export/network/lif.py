"""The LIF layer: the neuron of ``docs/semantics.md`` under the state protocol. State: ``v``."""

import torch
from torch import Tensor

from .. import validation
from ..functional import lif_step_unchecked
from .protocol import SpikingLayer


class LIFLayer(SpikingLayer):
    r"""``size`` leaky integrate-and-fire neurons.

    One step, for input ``x`` and potential ``v``:

    .. math::
        u = \beta v + x,\qquad s = \mathbb{1}[u > \vartheta],\qquad
        v' = \text{reset}(u, s)\ \ (\text{"zero": } v_\text{reset} \text{ where } s;\
        \text{"subtract": } u - s\vartheta;\ \text{"none": } u)

    Args:
        size: neurons per sample: an int, or a feature-map shape such as ``(C, H, W)``.
        beta: decay in ``[0, 1]``, scalar or of shape ``size``. Default ``0.9``.
        threshold: finite, ``> 0``, scalar or per neuron. Default ``1.0``.
        v_reset: finite reset potential. Default ``0.0``.
        reset: ``"zero"``, ``"subtract"`` or ``"none"``. Default ``"zero"``.
        learn_beta, learn_threshold: make them ``nn.Parameter`` (clamped in forward).
        surrogate, surrogate_slope: the surrogate gradient (:mod:`lif_export.surrogate`).
        dtype: dtype of the parameters (floating point).

    Shape:
        - x: ``[batch, *size]``; state ``[v]``, each ``[batch, *size]``.
        - output (spike): ``[batch, *size]``, dtype of ``x``.

    Example::

        >>> layer = LIFLayer(3, beta=0.5, threshold=0.8)
        >>> spike, state = layer.step(torch.full((2, 3), 0.9), layer.initial_state(2, torch.float32))
        >>> spike
        tensor([[1., 1., 1.],
                [1., 1., 1.]])
    """

    def __init__(self, size: int | tuple[int, ...], *, beta: validation.ParamLike = 0.9,
                 threshold: validation.ParamLike = 1.0, v_reset: validation.ParamLike = 0.0, reset: str = "zero",
                 learn_beta: bool = False, learn_threshold: bool = False, dtype: torch.dtype | None = None,
                 **surrogate: object) -> None:
        super().__init__(size, ["v"], beta, threshold, v_reset, reset, learn_beta, learn_threshold, dtype, surrogate)

    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        beta, threshold, v_reset = self.neuron_parameters()
        spike, v_next = lif_step_unchecked(x, state[0], beta, threshold, v_reset, self.reset, self.surrogate,
                                           self.surrogate_slope)
        return spike, [v_next]
