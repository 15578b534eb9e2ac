"""Leaky integrator: a non-spiking readout. State ``v``; output is the potential.

One step: ``v_next = beta * v + x``; the output is ``v_next``.
"""

from torch import Tensor

from .. import validation
from .protocol import StatefulLayer


class LeakyIntegratorLayer(StatefulLayer):
    """``size`` leaky integrators. Shape ``[batch, size]``; state ``[v]``; output ``v_next``."""

    def __init__(self, size: int, beta: validation.ParamLike = 0.9, **kwargs) -> None:
        super().__init__(size, ["v"], **kwargs)
        validation.check_beta(self._param("beta", beta))

    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        v_next = self.beta * state[0] + x
        return v_next, [v_next]

    def to_onnx(self, g, x: str, states: list[str], dtype: str, hint: str) -> tuple[str, list[str]]:  # noqa: ANN001
        from ..export.onnx_builder import emit_integrate

        v_next = emit_integrate(g, x, states[0], self.onnx_param(g, "beta", dtype, hint), hint)
        return v_next, [v_next]
