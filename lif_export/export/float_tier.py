"""The float tier: the ordinary layers an export admits besides the exact ones, and BatchNorm folded away.

A network with an ordinary ``nn.Linear``, ``nn.Conv2d``, ``nn.AvgPool2d`` or ``nn.BatchNorm1d`` /
``nn.BatchNorm2d`` is exported in the *float tier* (docs/networks.md, "Float tier"): those layers are
ordinary float operations whose sum order each backend chooses, so their results may differ in the last
bits between backends. The neuron arithmetic stays exactly docs/semantics.md's; ``verify`` judges such an
export against tolerances instead of bit for bit.

This module says which layers are float-tier (:func:`float_layers`), refuses the variants no format
writes (:func:`check_float_layer`), and folds each BatchNorm into the ``Linear`` / ``Conv2d`` right before
it (:func:`fold_batch_norms`), in place on the exporter's own copy of the network.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..errors import InvalidTypeError, InvalidValueError
from ..network import SpikingSequential
from ..network.protocol import SpikingLayer, Stateless

#: Ordinary layers exported as float operations.
FLOAT_LAYERS = (nn.Linear, nn.Conv2d, nn.AvgPool2d)
#: Layers folded into the ``Linear`` / ``Conv2d`` before them at export.
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
#: Ordinary layers that pass spikes through as spikes (they only move or pick values).
SPIKE_PRESERVING = (nn.Flatten, nn.Identity, nn.Dropout, nn.MaxPool2d)


def _inner(layer: nn.Module) -> nn.Module:
    return layer.module if isinstance(layer, Stateless) else layer


def float_layers(net: SpikingSequential) -> list[tuple[int, str]]:
    """``(index, type name)`` of every float-tier layer of ``net`` (BatchNorms included)."""
    return [(i, type(_inner(layer)).__name__) for i, layer in enumerate(net.layers)
            if isinstance(_inner(layer), (*FLOAT_LAYERS, *BATCH_NORMS))]


def _pair(value: int | tuple[int, ...]) -> tuple[int, ...]:
    return (value, value) if isinstance(value, int) else tuple(value)


def check_float_layer(index: int, module: nn.Module) -> None:
    """Refuse, naming the layer and the parameter, a float-tier layer that the formats do not write:
    a ``Conv2d`` with ``groups != 1`` or a padding mode other than zeros, an ``AvgPool2d`` with
    ``ceil_mode`` or a ``divisor_override`` other than 1 (sum pooling)."""
    label = f"layer {index} ({type(module).__name__})"
    if isinstance(module, nn.Conv2d):
        if module.groups != 1:
            raise InvalidValueError(f"{label}: groups={module.groups} is not exported; the float tier exports "
                                    "Conv2d with groups=1 (any stride, padding and dilation)")
        if module.padding_mode != "zeros":
            raise InvalidValueError(f"{label}: padding_mode={module.padding_mode!r} is not exported; the float tier "
                                    "exports Conv2d with padding_mode='zeros'")
    elif isinstance(module, nn.AvgPool2d):
        if module.ceil_mode:
            raise InvalidValueError(f"{label}: ceil_mode=True is not exported (ONNX and PyTorch size the last "
                                    "window differently); the float tier exports AvgPool2d with ceil_mode=False")
        if module.divisor_override not in (None, 1):
            raise InvalidValueError(f"{label}: divisor_override={module.divisor_override} is not exported; the "
                                    "float tier exports AvgPool2d with divisor_override None (average pooling) "
                                    "or 1 (sum pooling)")


def conv_pads(conv: nn.Conv2d) -> list[int]:
    """The zero padding of ``conv`` as ``[top, left, bottom, right]`` (``padding="same"`` pads more at the
    end, as PyTorch does)."""
    if conv.padding == "valid":
        return [0, 0, 0, 0]
    if conv.padding == "same":
        totals = [d * (k - 1) for d, k in zip(_pair(conv.dilation), _pair(conv.kernel_size), strict=True)]
        return [t // 2 for t in totals] + [t - t // 2 for t in totals]
    return list(_pair(conv.padding)) * 2  # type: ignore[arg-type]


def _fold(index: int, norm: _BatchNorm, previous: nn.Module | None, output: Tensor | None) -> None:
    """Scale ``previous``'s weight and shift its bias so that it computes ``norm(previous(x))``."""
    label = f"layer {index} ({type(norm).__name__})"
    if not isinstance(previous, (nn.Linear, nn.Conv2d)):
        where = f"layer {index - 1} is {type(previous).__name__}" if index else "it is the network's first layer"
        raise InvalidTypeError(f"{label}: a BatchNorm is exported folded into the nn.Linear or nn.Conv2d right "
                               f"before it, and {where}")
    if norm.running_mean is None or norm.running_var is None:
        raise InvalidValueError(f"{label}: track_running_stats=False normalizes with each batch's statistics, "
                                "which no folded layer computes; train it with track_running_stats=True")
    if isinstance(previous, nn.Linear) and output is not None and output.dim() != 2:
        raise InvalidValueError(
            f"{label}: it normalizes dim 1 of layer {index - 1}'s output {list(output.shape)}, not the "
            f"Linear's features; only a BatchNorm1d on a Linear's [batch, features] output folds into it")
    with torch.no_grad():
        scale = norm.running_var.double().add(norm.eps).rsqrt()
        if norm.weight is not None:
            scale = scale * norm.weight.double()
        bias = previous.bias.double() if previous.bias is not None else torch.zeros_like(scale)
        bias = (bias - norm.running_mean.double()) * scale
        if norm.bias is not None:
            bias = bias + norm.bias.double()
        weight = previous.weight.double() * scale.reshape(-1, *[1] * (previous.weight.dim() - 1))
        dtype = previous.weight.dtype
        previous.weight = nn.Parameter(weight.to(dtype), requires_grad=False)
        previous.bias = nn.Parameter(bias.to(dtype), requires_grad=False)


def fold_batch_norms(net: SpikingSequential, outputs: list[Tensor]) -> dict[int, str]:
    """Fold every BatchNorm of ``net`` (in eval mode; changed in place) into the layer before it and put
    an ``nn.Identity`` in its place, so every layer keeps its index and its state names.

    Args:
        net: the exporter's copy of the network.
        outputs: every layer's output for one probe step (``step_with_layer_outputs``), for the shapes.

    Returns:
        ``{index: BatchNorm type name}`` of the folded layers.
    """
    folded = {}
    for i, layer in enumerate(net.layers):
        norm = _inner(layer)
        if isinstance(norm, BATCH_NORMS):
            _fold(i, norm, _inner(net.layers[i - 1]) if i else None, outputs[i - 1] if i else None)
            net.layers[i] = Stateless(nn.Identity())
            folded[i] = type(norm).__name__
    return folded


def spike_outputs(net: SpikingSequential, output: str, states: list[tuple[str, str, str]]) -> list[str]:
    """The results of ``net`` that are spikes (0 or 1): ``output`` when the last layer that computes is a
    spiking one, and every spike state (a ``RecurrentLIFLayer``'s ``s``) as ``(input, output, trace)``
    names give them."""
    spikes = []
    for layer in reversed(list(net.layers)):
        if not isinstance(_inner(layer), SPIKE_PRESERVING):
            if isinstance(layer, SpikingLayer):
                spikes.append(output)
            break
    for name, final, trace in states:
        index, variable = name.split(".")[1:]
        if isinstance(net.layers[int(index)], SpikingLayer) and variable == "s":
            spikes += [final, trace]
    return spikes
