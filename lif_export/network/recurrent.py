"""Recurrent LIF: each neuron also receives the layer's previous spikes through a weight matrix.

One step (state ``v`` and the previous spikes ``s``)::

    r      = ExactLinear(s)              # recurrent current, exact on every backend
    u      = (beta * v + x) + r
    s_next = 1 if u > threshold else 0
    v_next = reset(u, s_next)
"""

from torch import Tensor

from .. import validation
from ..functional import fire_and_reset
from .exact import ExactLinear
from .protocol import StatefulLayer


class RecurrentLIFLayer(StatefulLayer):
    """``size`` LIF neurons with all-to-all recurrent weights. Shape ``[batch, size]``; state ``[v, s]``."""

    __constants__ = [*StatefulLayer.__constants__, "reset"]

    def __init__(self, size: int, beta: validation.ParamLike = 0.9, threshold: validation.ParamLike = 1.0,
                 v_reset: validation.ParamLike = 0.0, reset: str = "zero", **kwargs) -> None:
        if not isinstance(size, int):
            raise ValueError(f"size must be a positive integer for the recurrent LIF (all-to-all), got {size!r}")
        super().__init__(size, ["v", "s"], **kwargs)
        self._lif_parameters(beta, threshold, v_reset, reset)
        self.recurrent = ExactLinear(size, size, bias=False)

    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        v, s = state[0], state[1]
        u = (self.beta * v + x) + self.recurrent(s)
        hard, v_next = fire_and_reset(u, self.threshold, self.v_reset, self.reset)
        return self.with_surrogate(hard, u, self.threshold), [v_next, hard]

    def to_onnx(self, g, x: str, states: list[str], dtype: str, hint: str) -> tuple[str, list[str]]:  # noqa: ANN001
        from ..export.onnx_builder import ONNX_DTYPES, emit_fire_and_reset, emit_integrate

        v, s = states
        recurrent = self.recurrent.to_onnx(g, s, dtype, f"{hint}rec_")
        u = g.op("Add", [emit_integrate(g, x, v, self.onnx_param(g, "beta", dtype, hint), f"{hint}ff_"),
                         recurrent], f"{hint}u")
        v_reset = self.onnx_param(g, "v_reset", dtype, hint) if self.reset == "zero" else None
        spike, v_next, _ = emit_fire_and_reset(g, u, self.onnx_param(g, "threshold", dtype, hint), v_reset,
                                               self.reset, ONNX_DTYPES[dtype], hint)
        return spike, [v_next, spike]
