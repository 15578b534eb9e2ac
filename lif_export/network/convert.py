"""``to_exact``: ordinary ``nn.Linear`` / ``nn.Conv2d`` layers become :class:`ExactLinear` /
:class:`ExactConv2d`, their weights rounded to the exact layers' grid, the rounding error reported.

The exact layers compute on a fixed grid (multiples of ``2**-12``, weights and bias in ``[-16, 16]``;
:mod:`.exact`). ``grid_bits`` below 12 rounds to a coarser grid (multiples of ``2**-grid_bits``), which
is part of that grid and so just as exact. The grid has no per-layer scale today: the bound ``16`` and
the exactness argument (every sum of products exact in float64) are fixed constants of the exact
layers, so a layer with a weight or bias beyond ``[-16, 16]`` is refused rather than clipped.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import InvalidTypeError, InvalidValueError
from .exact import GRID_BITS, WEIGHT_BOUND, ExactConv2d, ExactLinear, quantize
from .protocol import Stateless
from .sequential import SpikingSequential


@dataclass(frozen=True)
class Rounding:
    """How far one layer's weights and bias moved onto the grid."""

    layer: str  # the layer's path in the network ("" for the network itself)
    description: str  # e.g. "Linear(64, 128)"
    grid_bits: int
    max_error: float  # max |rounded - original| over weights and bias
    rms_error: float
    max_abs: float  # max |original|

    def line(self) -> str:
        where = self.layer or "<network>"
        return (f"{where}: {self.description} -> exact, grid 2^-{self.grid_bits}: max |error| {self.max_error:.3g}, "
                f"rms {self.rms_error:.3g} (max |w| {self.max_abs:.3g})")


def _check_grid_bits(grid_bits: object) -> int:
    if isinstance(grid_bits, bool) or not isinstance(grid_bits, int) or not 0 <= grid_bits <= GRID_BITS:
        raise InvalidValueError(f"grid_bits must be an integer from 0 to {GRID_BITS} (the exact layers' grid is "
                         f"2^-{GRID_BITS}; a coarser one is part of it), got {grid_bits!r}")
    return grid_bits


def _rounded(name: str, description: str, tensors: list[Tensor], grid_bits: int) -> tuple[list[Tensor], Rounding]:
    """``tensors`` on the grid ``2**-grid_bits``; refuses values beyond the fixed bound instead of clipping."""
    originals = [t.detach().double() for t in tensors]
    largest = max(float(t.abs().max()) if t.numel() else 0.0 for t in originals)
    if not largest <= WEIGHT_BOUND:  # also catches NaN
        raise InvalidValueError(
            f"{name or '<network>'}: {description} has a weight or bias of magnitude {largest:.6g}, beyond the exact "
            f"layers' fixed bound {WEIGHT_BOUND:g}; the exact grid has no per-layer scale, so it would be clipped "
            "(rescale the layer and what follows it, e.g. the next neuron's threshold, by a power of two)")
    rounded = [quantize(t, WEIGHT_BOUND, float(2**grid_bits)) for t in originals]
    errors = torch.cat([(r - t).flatten() for r, t in zip(rounded, originals, strict=True)])
    rms = float(errors.square().mean().sqrt()) if errors.numel() else 0.0
    return rounded, Rounding(name, description, grid_bits, float(errors.abs().max()), rms, largest)


def _pair(value: int | tuple[int, ...] | str) -> tuple:
    return (value, value) if isinstance(value, int) else tuple(value)


def exact_layer(module: nn.Module, grid_bits: int = GRID_BITS, name: str = "") -> tuple[nn.Module, Rounding]:
    """The exact counterpart of one ``nn.Linear`` or ``nn.Conv2d`` and its rounding.

    ``nn.Conv2d`` must have a square kernel, stride 1, dilation 1, groups 1 and equal integer zero padding
    (what :class:`ExactConv2d` computes); anything else raises a ``ValueError`` naming the layer.
    """
    grid_bits = _check_grid_bits(grid_bits)
    label = name or "<network>"
    if isinstance(module, nn.Linear):
        description = f"Linear({module.in_features}, {module.out_features})"
        exact: ExactLinear | ExactConv2d = ExactLinear(module.in_features, module.out_features,
                                                       bias=module.bias is not None)
    elif isinstance(module, nn.Conv2d):
        k, padding = _pair(module.kernel_size), _pair(module.padding)
        description = f"Conv2d({module.in_channels}, {module.out_channels}, kernel_size={k[0]})"
        problems = [f"{what}={value}" for what, value, wanted in (
            ("stride", _pair(module.stride), (1, 1)), ("dilation", _pair(module.dilation), (1, 1)),
            ("groups", module.groups, 1), ("padding_mode", module.padding_mode, "zeros")) if value != wanted]
        if k[0] != k[1]:
            problems.append(f"kernel_size={k}")
        if isinstance(module.padding, str) or padding[0] != padding[1]:
            problems.append(f"padding={module.padding!r}")
        if problems:
            raise InvalidValueError(
                f"{label}: cannot make {description} exact: {', '.join(problems)}; ExactConv2d is a "
                             "stride-1, dilation-1, groups-1 convolution with a square kernel and equal zero padding")
        exact = ExactConv2d(module.in_channels, module.out_channels, k[0], padding=padding[0])
    else:
        raise InvalidTypeError(
            f"{label}: only nn.Linear and nn.Conv2d have exact counterparts, got {type(module).__name__}")
    tensors = [module.weight] + ([module.bias] if module.bias is not None else [])
    rounded, rounding = _rounded(name, description, tensors, grid_bits)
    exact = exact.to(module.weight.dtype)
    with torch.no_grad():
        exact.weight.copy_(rounded[0])
        if exact.bias is not None:
            exact.bias.copy_(rounded[1] if module.bias is not None else torch.zeros_like(exact.bias))
    exact.train(module.training)
    return exact, rounding


def to_exact(net: nn.Module, grid_bits: int = GRID_BITS, report: Callable[[str], None] | None = print,
             roundings: list[Rounding] | None = None) -> nn.Module:
    """A copy of ``net`` with every ``nn.Linear`` and ``nn.Conv2d`` replaced by its exact counterpart.

    Args:
        net: any module (a :class:`~lif_export.network.SpikingSequential`, an ``nn.Sequential``, a single
            layer, ...); it is not changed.
        grid_bits: round weights and biases to multiples of ``2**-grid_bits`` (``0`` to ``12``).
        report: called with one line per converted layer (its rounding error); ``None`` for silence.
        roundings: if given, each layer's :class:`Rounding` is appended to it.

    Returns:
        The converted copy. Raises ``ValueError`` naming the layer for a convolution ``ExactConv2d``
        cannot compute or a weight beyond the fixed bound ``[-16, 16]``.
    """
    _check_grid_bits(grid_bits)

    def convert(module: nn.Module, name: str) -> nn.Module:
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            exact, rounding = exact_layer(module, grid_bits, name)
            if report is not None:
                report(rounding.line())
            if roundings is not None:
                roundings.append(rounding)
            return exact
        for child_name, child in list(module.named_children()):
            setattr(module, child_name, convert(child, f"{name}.{child_name}" if name else child_name))
        return module

    converted = convert(copy.deepcopy(net), "")
    if isinstance(converted, SpikingSequential):  # built again, so the container sees its new layers
        rebuilt = SpikingSequential(*(layer.module if isinstance(layer, Stateless) else layer
                                      for layer in converted.layers))
        return rebuilt.train(converted.training)
    return converted
