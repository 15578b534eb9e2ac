"""The state protocol shared by every stateful layer and network (TorchScript-compatible).

A stateful layer has

* ``state_names``: its state variables, in order (``["v"]``, ``["i", "v"]``, ...);
* ``initial_state(batch, dtype)``: zeros ``[batch, size]`` for each variable;
* ``step(x, state) -> (out, new_state)``: one time step, ``state`` a list in ``state_names`` order.

A network flattens its layers' states into one ordered list named
``state.<layer>.<variable>`` (see :class:`~lif_export.network.sequential.SpikingSequential`).
Stateless PyTorch layers join through :class:`Stateless`, whose state is empty.
"""

import torch
from torch import Tensor, nn

from .. import validation
from ..surrogate import DEFAULT_SURROGATE, surrogate_term


class StatefulLayer(nn.Module):
    """Base of the neuron layers: ``size`` neurons, named state, parameters as buffers."""

    __constants__ = ["size", "state_names", "surrogate", "surrogate_alpha"]

    def __init__(self, size: int, state_names: list[str], surrogate: str = DEFAULT_SURROGATE,
                 surrogate_alpha: float | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        self.size: int = size
        self.state_names: list[str] = list(state_names)
        self.surrogate, self.surrogate_alpha = validation.check_surrogate(surrogate, surrogate_alpha)
        self._dtype = dtype or torch.get_default_dtype()

    def _param(self, name: str, value: validation.ParamLike) -> Tensor:
        """Register a (scalar or per-neuron ``[size]``) parameter buffer."""
        tensor = validation.as_param_tensor(name, value, self._dtype)
        if tensor.dim() > 0 and tuple(tensor.shape) != (self.size,):
            raise ValueError(f"{name} must be a scalar or have shape ({self.size},), got {tuple(tensor.shape)}")
        self.register_buffer(name, tensor)
        return tensor

    def _lif_parameters(self, beta: validation.ParamLike, threshold: validation.ParamLike,
                        v_reset: validation.ParamLike, reset: str) -> None:
        """Register and check the parameters every LIF-type layer has (SPEC.md's valid ranges)."""
        validation.check_beta(self._param("beta", beta))
        validation.check_threshold(self._param("threshold", threshold))
        validation.check_v_reset(self._param("v_reset", v_reset))
        self.v_reset = validation.canonical_v_reset(self.v_reset)
        self.reset: str = validation.check_reset(reset)

    @torch.jit.export
    def initial_state(self, batch: int, dtype: torch.dtype) -> list[Tensor]:
        return [torch.zeros([batch, self.size], dtype=dtype) for _ in self.state_names]

    def with_surrogate(self, spike: Tensor, u: Tensor, threshold: Tensor) -> Tensor:
        """The hard spike, plus the surrogate term (exactly +0.0) when a gradient is needed."""
        if u.requires_grad:
            spike = spike + surrogate_term(u, threshold, self.surrogate, self.surrogate_alpha)
        return spike

    def onnx_param(self, g, name: str, dtype: str, hint: str) -> str:  # noqa: ANN001 - an onnx_builder.Graph
        """Add parameter ``name`` to an ONNX graph as a constant of ``dtype``; returns its name."""
        return g.const(f"{hint}{name}", getattr(self, name).detach().to(_TORCH_DTYPES[dtype]).numpy())

    def extra_repr(self) -> str:
        return f"size={self.size}, state={self.state_names}"


_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class Stateless(nn.Module):
    """Adapts an ordinary layer (``Linear``, ``Flatten``, ``Dropout`` in eval, ...) to the protocol."""

    __constants__ = ["state_names"]

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.state_names = []  # a constant: TorchScript sees an empty tuple

    @torch.jit.export
    def initial_state(self, batch: int, dtype: torch.dtype) -> list[Tensor]:
        return []

    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        return self.module(x), state

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x)

    def to_onnx(self, g, x: str, states: list[str], dtype: str, hint: str) -> tuple[str, list[str]]:  # noqa: ANN001
        """The wrapped layer as ONNX nodes (only layers whose arithmetic is the same on every backend)."""
        if hasattr(self.module, "to_onnx"):
            return self.module.to_onnx(g, x, dtype, hint), []
        if isinstance(self.module, nn.Flatten) and self.module.start_dim == 1 and self.module.end_dim == -1:
            return g.op("Flatten", [x], f"{hint}flat", axis=1), []
        if isinstance(self.module, (nn.Identity, nn.Dropout)):
            return g.op("Identity", [x], f"{hint}identity"), []
        raise TypeError(
            f"cannot export {type(self.module).__name__}: only ExactLinear, Flatten(start_dim=1), Dropout (eval) "
            "and Identity are exported bit-identically (an ordinary Linear's sum order differs between backends)"
        )
