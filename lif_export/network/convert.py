"""``to_exact``: ordinary ``nn.Linear`` / ``nn.Conv2d`` layers become :class:`ExactLinear` /
:class:`ExactConv2d`, their weights rounded to the exact layers' grid, the rounding error reported.

The exact layers put weights and bias on multiples of ``2**(k-12)`` within ``[-16 * 2**k, 16 * 2**k]``,
``k`` a per-layer exponent (:mod:`.exact`; scaling a grid by a power of two keeps every sum exact,
docs/semantics.md). Each layer gets the smallest ``k >= 0`` that holds its largest weight or bias, so
layers within ``[-16, 16]`` keep ``k = 0`` (the fixed grid) and larger ones are scaled, never clipped.
``grid_bits`` below 12 rounds to a coarser grid (multiples of ``2**(k-grid_bits)``), which is part of
the layer's grid and so just as exact.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import InvalidTypeError, InvalidValueError
from .exact import GRID_BITS, WEIGHT_BOUND, WEIGHT_EXPONENT_MAX, ExactConv2d, ExactLinear, quantize
from .protocol import Stateless
from .sequential import SpikingSequential


@dataclass(frozen=True)
class Rounding:
    """How far one layer's weights and bias moved onto the grid ``2**(exponent - grid_bits)``."""

    layer: str  # the layer's path in the network ("" for the network itself)
    description: str  # e.g. "Linear(64, 128)"
    grid_bits: int
    max_error: float  # max |rounded - original| over weights and bias (at most half a grid step)
    rms_error: float
    max_abs: float  # max |original|
    exponent: int = 0  # the exact layer's weight_exponent: its grid scaled by 2**exponent

    def line(self) -> str:
        where = self.layer or "<network>"
        scaled = f" (scaled by 2^{self.exponent})" if self.exponent else ""
        return (f"{where}: {self.description} -> exact, grid 2^{self.exponent - self.grid_bits}{scaled}: "
                f"max |error| {self.max_error:.3g}, rms {self.rms_error:.3g} (max |w| {self.max_abs:.3g})")


def _check_grid_bits(grid_bits: object) -> int:
    if isinstance(grid_bits, bool) or not isinstance(grid_bits, int) or not 0 <= grid_bits <= GRID_BITS:
        raise InvalidValueError(f"grid_bits must be an integer from 0 to {GRID_BITS} (the exact layers' grid is "
                         f"2^-{GRID_BITS}; a coarser one is part of it), got {grid_bits!r}")
    return grid_bits


def weight_exponent(largest: float) -> int:
    """The smallest ``k >= 0`` with ``largest <= 16 * 2**k`` (exact: ``frexp``, no logarithm)."""
    if largest <= WEIGHT_BOUND:
        return 0
    mantissa, exponent = math.frexp(largest / WEIGHT_BOUND)  # largest/16 = mantissa * 2**exponent, 0.5 <= m < 1
    return exponent - 1 if mantissa == 0.5 else exponent


def _rounded(label: str, description: str, tensors: dict[str, Tensor],
             grid_bits: int) -> tuple[list[Tensor], int, Rounding]:
    """``tensors`` (by parameter name) on the grid ``2**(k-grid_bits)``, ``k`` the layer's weight exponent;
    refuses a non-finite value or one beyond the largest exponent's bound, naming the parameter."""
    originals = {what: t.detach().double() for what, t in tensors.items()}
    largest, worst = 0.0, ""
    for what, t in originals.items():
        if not bool(torch.isfinite(t).all()):
            raise InvalidValueError(f"{label}: {description}.{what} has a non-finite value (NaN or inf), which no "
                                    "grid holds")
        if t.numel() and float(t.abs().max()) > largest:
            largest, worst = float(t.abs().max()), what
    exponent = weight_exponent(largest)
    if exponent > WEIGHT_EXPONENT_MAX:
        raise InvalidValueError(
            f"{label}: {description}.{worst} has a value of magnitude {largest:.6g}, beyond the exact layers' "
            f"largest bound {WEIGHT_BOUND:g} * 2**{WEIGHT_EXPONENT_MAX} (weight_exponent <= {WEIGHT_EXPONENT_MAX})")
    bound = math.ldexp(WEIGHT_BOUND, exponent)
    rounded = [quantize(t, bound, math.ldexp(1.0, grid_bits - exponent)) for t in originals.values()]
    errors = torch.cat([(r - t).flatten() for r, t in zip(rounded, originals.values(), strict=True)])
    rms = float(errors.square().mean().sqrt()) if errors.numel() else 0.0
    max_error = float(errors.abs().max()) if errors.numel() else 0.0
    name = "" if label == "<network>" else label
    return rounded, exponent, Rounding(name, description, grid_bits, max_error, rms, largest, exponent)


def _pair(value: int | tuple[int, ...] | str) -> tuple:
    return (value, value) if isinstance(value, int) else tuple(value)


def _conv_padding(module: nn.Conv2d) -> int | None:
    """``module``'s zero padding as one integer for all four sides (``"valid"``: 0; ``"same"``: half the
    dilated kernel's extent when even), ``None`` when the sides differ."""
    k, dilation = _pair(module.kernel_size), _pair(module.dilation)
    if module.padding == "valid":
        return 0
    if module.padding == "same":
        extents = {d * (size - 1) for d, size in zip(dilation, k, strict=True)}
        extent = extents.pop()
        return extent // 2 if not extents and extent % 2 == 0 else None
    height, width = _pair(module.padding)
    return int(height) if height == width else None


def exact_layer(module: nn.Module, grid_bits: int = GRID_BITS, name: str = "") -> tuple[nn.Module, Rounding]:
    """The exact counterpart of one ``nn.Linear`` or ``nn.Conv2d`` and its rounding.

    The weight exponent is the smallest ``k >= 0`` whose bound ``16 * 2**k`` holds every weight and
    bias. ``nn.Conv2d`` may have any stride and dilation; it must have a square kernel, groups 1 and the
    same zero padding on every side (what :class:`ExactConv2d` computes); anything else raises a
    ``ValueError`` naming the layer and the parameter.
    """
    grid_bits = _check_grid_bits(grid_bits)
    label = name or "<network>"
    if isinstance(module, nn.Linear):
        description = f"Linear({module.in_features}, {module.out_features})"
    elif isinstance(module, nn.Conv2d):
        k, stride, dilation, padding = (_pair(module.kernel_size), _pair(module.stride), _pair(module.dilation),
                                        _conv_padding(module))
        geometry = "".join(f", {what}={value}" for what, value in (("stride", stride), ("dilation", dilation))
                           if value != (1, 1))
        description = f"Conv2d({module.in_channels}, {module.out_channels}, kernel_size={k[0]}{geometry})"
        problems = [f"{what}={value!r}" for what, value, wanted in (
            ("groups", module.groups, 1), ("padding_mode", module.padding_mode, "zeros")) if value != wanted]
        if k[0] != k[1]:
            problems.append(f"kernel_size={k}")
        if padding is None:
            problems.append(f"padding={module.padding!r}")
        if problems:
            raise InvalidValueError(
                f"{label}: cannot make {description} exact: {', '.join(problems)}; ExactConv2d is a groups-1 "
                "convolution with a square kernel and the same zero padding on every side (any stride and dilation)")
    else:
        raise InvalidTypeError(
            f"{label}: only nn.Linear and nn.Conv2d have exact counterparts, got {type(module).__name__}")
    tensors = {"weight": module.weight, **({} if module.bias is None else {"bias": module.bias})}
    rounded, exponent, rounding = _rounded(label, description, tensors, grid_bits)
    try:
        exact: ExactLinear | ExactConv2d = (
            ExactLinear(module.in_features, module.out_features, bias=module.bias is not None,
                        weight_exponent=exponent) if isinstance(module, nn.Linear)
            else ExactConv2d(module.in_channels, module.out_channels, k[0], padding=padding or 0, stride=stride,
                             dilation=dilation, weight_exponent=exponent))
    except InvalidValueError as err:  # e.g. more terms per output than the exact sums allow
        raise InvalidValueError(f"{label}: cannot make {description} exact: {err}") from None
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
        grid_bits: round weights and biases to multiples of ``2**(k-grid_bits)`` (``0`` to ``12``), ``k``
            each layer's weight exponent (0 unless its weights exceed ``[-16, 16]``).
        report: called with one line per converted layer (its grid and rounding error); ``None`` for silence.
        roundings: if given, each layer's :class:`Rounding` is appended to it.

    Returns:
        The converted copy. Raises ``ValueError`` naming the layer and the parameter for a convolution
        ``ExactConv2d`` cannot compute (groups, non-square kernel, uneven padding) or a weight that is not
        finite or beyond the largest scaled bound ``16 * 2**123``.
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
