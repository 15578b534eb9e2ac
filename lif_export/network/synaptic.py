"""Current-based synaptic LIF. State: synaptic current ``i`` and potential ``v``.

One step::

    i_next = alpha * i + x              # synaptic current decays, input adds
    u      = beta * v + i_next          # the membrane integrates the current
    s      = 1 if u > threshold else 0
    v_next = reset(u, s)                # as for the LIF ("zero", "subtract", "none")
"""

from torch import Tensor

from .. import validation
from ..functional import lif_step_unchecked
from .protocol import StatefulLayer


class SynapticLIFLayer(StatefulLayer):
    """``size`` current-based LIF neurons. Shape ``[batch, size]``; state ``[i, v]``."""

    __constants__ = [*StatefulLayer.__constants__, "reset"]

    def __init__(self, size: int, alpha: validation.ParamLike = 0.8, beta: validation.ParamLike = 0.9,
                 threshold: validation.ParamLike = 1.0, v_reset: validation.ParamLike = 0.0, reset: str = "zero",
                 **kwargs) -> None:
        super().__init__(size, ["i", "v"], **kwargs)
        validation.check_unit_interval("alpha", self._param("alpha", alpha))
        self._lif_parameters(beta, threshold, v_reset, reset)

    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        i_next = self.alpha * state[0] + x
        spike, v_next = lif_step_unchecked(i_next, state[1], self.beta, self.threshold, self.v_reset, self.reset,
                                           self.surrogate, self.surrogate_alpha)
        return spike, [i_next, v_next]

    def to_onnx(self, g, x: str, states: list[str], dtype: str, hint: str) -> tuple[str, list[str]]:  # noqa: ANN001
        from ..export.onnx_builder import ONNX_DTYPES, emit_integrate, emit_lif

        i_next = emit_integrate(g, x, states[0], self.onnx_param(g, "alpha", dtype, hint), f"{hint}syn_")
        v_reset = self.onnx_param(g, "v_reset", dtype, hint) if self.reset == "zero" else None
        spike, v_next = emit_lif(g, i_next, states[1], self.onnx_param(g, "beta", dtype, hint),
                                 self.onnx_param(g, "threshold", dtype, hint), v_reset, self.reset,
                                 ONNX_DTYPES[dtype], hint)
        return spike, [i_next, v_next]
