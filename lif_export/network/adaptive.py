"""Adaptive LIF: the threshold rises by ``b`` with each spike and decays back. State ``v`` and ``a``.

One step::

    u        = beta * v + x
    theta_t  = threshold + a            # effective threshold
    s        = 1 if u > theta_t else 0
    v_next   = v_reset where s else u   (reset="zero"), or u - s * theta_t (reset="subtract")
    a_next   = rho * a + b * s          # adaptation: decays with rho, jumps by b on a spike
"""

import torch
from torch import Tensor

from .. import validation
from ..functional import fire_and_reset
from .protocol import StatefulLayer


class AdaptiveLIFLayer(StatefulLayer):
    """``size`` adaptive-threshold LIF neurons. Shape ``[batch, size]``; state ``[v, a]``."""

    __constants__ = [*StatefulLayer.__constants__, "reset"]

    def __init__(self, size: int, beta: validation.ParamLike = 0.9, threshold: validation.ParamLike = 1.0,
                 rho: validation.ParamLike = 0.95, b: validation.ParamLike = 0.2,
                 v_reset: validation.ParamLike = 0.0, reset: str = "zero", **kwargs) -> None:
        super().__init__(size, ["v", "a"], **kwargs)
        if reset == "none":
            raise ValueError("reset must be 'zero' or 'subtract' for the adaptive LIF, got 'none'")
        self._lif_parameters(beta, threshold, v_reset, reset)
        validation.check_unit_interval("rho", self._param("rho", rho))
        b_t = self._param("b", b)
        if bool((~(torch.isfinite(b_t) & (b_t >= 0))).any()):
            raise ValueError(f"b must be finite and >= 0, got {b_t.tolist()}")

    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        v, a = state[0], state[1]
        u = self.beta * v + x
        theta = self.threshold + a
        spike, v_next = fire_and_reset(u, theta, self.v_reset, self.reset)
        a_next = self.rho * a + self.b * spike
        spike = self.with_surrogate(spike, u, theta.detach())
        return spike, [v_next, a_next]

    def to_onnx(self, g, x: str, states: list[str], dtype: str, hint: str) -> tuple[str, list[str]]:  # noqa: ANN001
        from ..export.onnx_builder import ONNX_DTYPES, emit_fire_and_reset, emit_integrate

        v, a = states
        u = emit_integrate(g, x, v, self.onnx_param(g, "beta", dtype, hint), hint)
        theta = g.op("Add", [self.onnx_param(g, "threshold", dtype, hint), a], f"{hint}theta")
        v_reset = self.onnx_param(g, "v_reset", dtype, hint) if self.reset == "zero" else None
        spike, v_next, _ = emit_fire_and_reset(g, u, theta, v_reset, self.reset, ONNX_DTYPES[dtype], hint)
        a_next = g.op("Add", [g.op("Mul", [self.onnx_param(g, "rho", dtype, hint), a], f"{hint}rho_a"),
                              g.op("Mul", [self.onnx_param(g, "b", dtype, hint), spike], f"{hint}b_s")],
                      f"{hint}a_next")
        return spike, [v_next, a_next]
