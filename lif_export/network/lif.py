"""LIF layer: SPEC.md's neuron under the state protocol. State: ``v``."""

from torch import Tensor

from .. import validation
from ..functional import lif_step_unchecked
from .protocol import StatefulLayer


class LIFLayer(StatefulLayer):
    r"""``size`` LIF neurons (SPEC.md): :math:`u = \beta v + x`, spike if :math:`u > \vartheta`, reset.

    Shape: ``x [batch, size]`` -> ``spike [batch, size]``; state ``[v]``.
    """

    __constants__ = [*StatefulLayer.__constants__, "reset"]

    def __init__(self, size: int, beta: validation.ParamLike = 0.9, threshold: validation.ParamLike = 1.0,
                 v_reset: validation.ParamLike = 0.0, reset: str = "zero", **kwargs) -> None:
        super().__init__(size, ["v"], **kwargs)
        self._lif_parameters(beta, threshold, v_reset, reset)

    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        spike, v_next = lif_step_unchecked(x, state[0], self.beta, self.threshold, self.v_reset, self.reset,
                                           self.surrogate, self.surrogate_alpha)
        return spike, [v_next]

    def to_onnx(self, g, x: str, states: list[str], dtype: str, hint: str) -> tuple[str, list[str]]:  # noqa: ANN001
        from ..export.onnx_builder import ONNX_DTYPES, emit_lif

        v_reset = self.onnx_param(g, "v_reset", dtype, hint) if self.reset == "zero" else None
        spike, v_next = emit_lif(g, x, states[0], self.onnx_param(g, "beta", dtype, hint),
                                 self.onnx_param(g, "threshold", dtype, hint), v_reset, self.reset,
                                 ONNX_DTYPES[dtype], hint)
        return spike, [v_next]
