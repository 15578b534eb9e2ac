"""The state protocol shared by every stateful layer and network (TorchScript-compatible).

A stateful layer has

* ``state_names``: its state variables, in order (``["v"]``, ``["i", "v"]``, ...);
* ``initial_state(batch, dtype)``: zeros ``[batch, *shape]`` for each variable;
* ``step(x, state) -> (out, new_state)``: one time step, ``state`` a list in ``state_names`` order.

A network flattens its layers' states into one ordered list named
``state.<layer>.<variable>`` (see :class:`~lif_export.network.sequential.SpikingSequential`).
Stateless PyTorch layers join through :class:`Stateless`, whose state is empty.
"""

import math

import torch
from torch import Tensor, nn

from .. import validation
from ..surrogate import DEFAULT_SURROGATE, surrogate_term


class StatefulLayer(nn.Module):
    """Base of the neuron layers: named state, parameters as buffers.

    ``size`` is the number of neurons (``[batch, size]`` inputs) or the per-sample
    shape of a feature map (``(C, H, W)`` for inputs ``[batch, C, H, W]``).
    """

    __constants__ = ["size", "shape", "state_names", "surrogate", "surrogate_alpha"]

    def __init__(self, size: int | tuple[int, ...], state_names: list[str], surrogate: str = DEFAULT_SURROGATE,
                 surrogate_alpha: float | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        dims = (size,) if isinstance(size, int) and not isinstance(size, bool) else size
        if not isinstance(dims, (tuple, list)) or not dims or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims):
            raise ValueError(f"size must be a positive integer or a tuple of them, got {size!r}")
        self.shape: list[int] = list(dims)
        self.size: int = int(math.prod(dims))
        self.state_names: list[str] = list(state_names)
        self.surrogate, self.surrogate_alpha = validation.check_surrogate(surrogate, surrogate_alpha)
        self._dtype = dtype or torch.get_default_dtype()

    def _param(self, name: str, value: validation.ParamLike) -> Tensor:
        """Register a (scalar or per-neuron, of the layer's shape) parameter buffer."""
        tensor = validation.as_param_tensor(name, value, self._dtype)
        if tensor.dim() > 0 and list(tensor.shape) != self.shape:
            raise ValueError(f"{name} must be a scalar or have shape {tuple(self.shape)}, got {tuple(tensor.shape)}")
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
        return [torch.zeros([batch] + self.shape, dtype=dtype) for _ in self.state_names]

    def with_surrogate(self, spike: Tensor, u: Tensor, threshold: Tensor) -> Tensor:
        """The hard spike, plus the surrogate term (exactly +0.0) when a gradient is needed."""
        if u.requires_grad:
            spike = spike + surrogate_term(u, threshold, self.surrogate, self.surrogate_alpha)
        return spike

    def onnx_param(self, g, name: str, dtype: str, hint: str) -> str:  # noqa: ANN001 - an onnx_builder.Graph
        """Add parameter ``name`` to an ONNX graph as a constant of ``dtype``; returns its name."""
        from ..export.spec import DTYPES

        return g.const(f"{hint}{name}", getattr(self, name).detach().to(DTYPES[dtype][0]).numpy())

    def extra_repr(self) -> str:
        shape = self.shape[0] if len(self.shape) == 1 else tuple(self.shape)
        return f"size={shape}, state={self.state_names}"


def _pair(value: int | tuple[int, int]) -> list[int]:
    return [value, value] if isinstance(value, int) else list(value)


def _plain_pool(pool: nn.MaxPool2d) -> bool:
    """A max-pool ONNX's MaxPool reproduces as is: no padding, dilation, ceil mode or indices."""
    return (_pair(pool.padding) == [0, 0] and _pair(pool.dilation) == [1, 1] and not pool.ceil_mode
            and not pool.return_indices)


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
        if isinstance(self.module, nn.MaxPool2d) and _plain_pool(self.module):
            k, stride = _pair(self.module.kernel_size), _pair(self.module.stride or self.module.kernel_size)
            return g.op("MaxPool", [x], f"{hint}maxpool", kernel_shape=k, strides=stride), []
        raise TypeError(
            f"cannot export {type(self.module).__name__}: only ExactLinear, ExactConv2d, Flatten(start_dim=1), "
            "MaxPool2d (no padding/dilation), Dropout (eval) and Identity are exported bit-identically (an "
            "ordinary Linear's or Conv2d's sum order differs between backends)"
        )
