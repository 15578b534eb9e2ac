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
from ..errors import InvalidTypeError, InvalidValueError
from ..parameters import (
    LIFParameterAttributes,
    check_loaded,
    register_lif_parameters,
    register_parameter,
    surrogate_options,
)
from ..surrogate import surrogate_term


class StatefulLayer(nn.Module):
    """Base of the layers with state: named state variables, parameters registered and checked.

    ``size`` is the number of neurons (``[batch, size]`` inputs) or the per-sample
    shape of a feature map (``(C, H, W)`` for inputs ``[batch, C, H, W]``).
    """

    __constants__ = ["size", "shape", "state_names"]
    shape: list[int]
    size: int
    state_names: list[str]

    def __init__(self, size: int | tuple[int, ...], state_names: list[str], dtype: torch.dtype | None = None) -> None:
        super().__init__()
        dims = (size,) if isinstance(size, int) and not isinstance(size, bool) else size
        if not isinstance(dims, (tuple, list)) or not dims or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims):
            raise InvalidValueError(f"size must be a positive integer or a tuple of them, got {size!r}")
        self.shape: list[int] = list(dims)
        self.size: int = int(math.prod(dims))
        self.state_names: list[str] = list(state_names)
        self._dtype = dtype

    def _param(self, name: str, value: validation.ParamLike, learn: bool = False) -> Tensor:
        """Register a (scalar or per-neuron, of the layer's shape) parameter, checked for its range."""
        return register_parameter(self, name, value, self._dtype, self.shape, learn)

    @torch.jit.export
    def initial_state(self, batch: int, dtype: torch.dtype) -> list[Tensor]:
        return [torch.zeros([batch] + self.shape, dtype=dtype) for _ in self.state_names]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        check_loaded(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        shape = self.shape[0] if len(self.shape) == 1 else tuple(self.shape)
        return f"size={shape}, state={self.state_names}"


class SpikingLayer(LIFParameterAttributes, StatefulLayer):
    """Base of the LIF-type layers: ``beta``, ``threshold``, ``v_reset``, ``reset`` and a surrogate,
    registered exactly as :class:`~lif_export.modules.LIFCell` registers them (so ``beta`` and
    ``threshold`` can be learned here too: ``learn_beta=True``, ``learn_threshold=True``)."""

    __constants__ = [*StatefulLayer.__constants__, "reset", "surrogate", "surrogate_slope", "learn_beta",
                     "learn_threshold", "min_threshold"]
    def __init__(self, size: int | tuple[int, ...], state_names: list[str], beta: validation.ParamLike,
                 threshold: validation.ParamLike, v_reset: validation.ParamLike, reset: str, learn_beta: bool,
                 learn_threshold: bool, dtype: torch.dtype | None, options: dict) -> None:
        super().__init__(size, state_names, dtype)
        surrogate = surrogate_options(options)
        if options:
            raise InvalidTypeError(f"{type(self).__name__} got unexpected keyword arguments {sorted(options)}")
        register_lif_parameters(self, beta, threshold, v_reset, reset, learn_beta, learn_threshold,
                                surrogate["surrogate"], surrogate["surrogate_slope"], dtype, self.shape)

    def with_surrogate(self, spike: Tensor, u: Tensor, threshold: Tensor) -> Tensor:
        """The hard spike, plus the surrogate term (exactly +0.0) when a gradient is needed."""
        if u.requires_grad or threshold.requires_grad:
            spike = spike + surrogate_term(u, threshold, self.surrogate, self.surrogate_slope)
        return spike


class Stateless(nn.Module):
    """Adapts an ordinary layer (``Flatten``, ``MaxPool2d``, ``Dropout`` in eval, ...) to the protocol."""

    __constants__ = ["state_names"]
    state_names: list[str]

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.state_names: list[str] = []  # a constant: TorchScript sees an empty tuple

    @torch.jit.export
    def initial_state(self, batch: int, dtype: torch.dtype) -> list[Tensor]:
        return []

    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        return self.module(x), state

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x)
