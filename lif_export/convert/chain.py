"""The chain the converters build: layers in order, with the per-sample shape of the signal after each,
so that a neuron layer gets its size from what feeds it (snnTorch and Norse neurons have none)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InvalidValueError
from ..network import SpikingSequential
from ..network.protocol import StatefulLayer


class LayerChain:
    """Layers appended in forward order; ``shape`` is the per-sample shape after the last one."""

    def __init__(self, feature_shape: tuple[int, ...] | None, first: nn.Module | None,
                 dtype: torch.dtype = torch.float32) -> None:
        if feature_shape is None and isinstance(first, nn.Linear):
            feature_shape = (first.in_features,)
        self.shape: tuple[int, ...] | None = None if feature_shape is None else tuple(int(d) for d in feature_shape)
        self.layers: list[nn.Module] = []
        self.dtype = dtype  # of the probe that finds each layer's output shape

    def add(self, layer: nn.Module) -> None:
        if self.shape is not None:
            with torch.no_grad():
                probe = torch.zeros((1, *self.shape), dtype=self.dtype)
                stateful: Any = layer
                out = (stateful.step(probe, stateful.initial_state(1, probe.dtype))[0]
                       if isinstance(layer, StatefulLayer) else layer(probe))
            self.shape = tuple(out.shape[1:])
        self.layers.append(layer)

    def neuron_shape(self, name: str) -> tuple[int, ...]:
        if self.shape is None:
            raise InvalidValueError(f"{name}: its size is unknown: pass feature_shape (the per-sample input shape)")
        return self.shape

    def network(self) -> SpikingSequential:
        if not self.layers:
            raise InvalidValueError("the model has no layers")
        return SpikingSequential(*self.layers).eval()


def per_neuron(name: str, what: str, value: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``value`` (float32) as a 0-dim tensor or one of exactly ``shape``, as the layers take them."""
    value = value.detach().to(torch.float32)
    if value.numel() == 1:
        return value.reshape(())
    try:
        return value.expand(torch.Size((1, *shape)))[0].clone()
    except RuntimeError:
        raise InvalidValueError(f"{name}: {what} of shape {tuple(value.shape)} does not fit its {tuple(shape)} "
                         "neurons") from None
