"""``ExactLinear`` and ``ExactConv2d``: layers whose result is the same bits on every backend.

A matrix product's rounding depends on the order in which a library sums
(MKL, MLAS and Eigen all differ), so an ordinary ``Linear`` cannot be
bit-identical across PyTorch and onnxruntime. ``ExactLinear`` puts inputs,
weights and bias on a fixed-point grid (multiples of ``2**-12``, inputs
clamped to ``[-256, 256]``, weights and bias to ``[-16, 16]``) and computes in
float64: every product then has at most 36 significant bits and a sum of up
to 2**17 of them is exact in float64, so any summation order gives the same
float64 value, which is rounded once to the input's dtype. Gradients pass
straight through the grid (a straight-through estimator).
"""

import math

import torch
from torch import Tensor, nn

GRID_BITS = 12
SCALE = float(2**GRID_BITS)
INPUT_BOUND = 256.0
WEIGHT_BOUND = 16.0
MAX_IN_FEATURES = 2**17


def quantize(x: Tensor, bound: float, scale: float) -> Tensor:
    """Clamp to ``[-bound, bound]`` and round to a multiple of ``1/scale`` (each step exact)."""
    return torch.round(torch.clamp(x, -bound, bound) * scale) / scale


def straight_through(x: Tensor, bound: float, scale: float) -> Tensor:
    """``quantize`` in the forward pass; when a gradient is needed, identity for it."""
    q = quantize(x, bound, scale)
    if x.requires_grad:
        q = q + (x - x.detach())  # exactly +0.0 for finite x: the forward value stays on the grid
    return q


class ExactLinear(nn.Module):
    """``y = x W^T + b`` computed exactly (see the module docstring).

    Shape: ``x [*, in_features]`` -> ``y [*, out_features]``, dtype of ``x``.
    """

    # TorchScript reads module constants, not module-level globals.
    __constants__ = ["in_features", "out_features", "scale", "input_bound", "weight_bound"]

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if in_features > MAX_IN_FEATURES:
            raise ValueError(f"in_features must be <= {MAX_IN_FEATURES} for exact sums, got {in_features}")
        self.in_features = in_features
        self.out_features = out_features
        self.scale, self.input_bound, self.weight_bound = SCALE, INPUT_BOUND, WEIGHT_BOUND
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)

    def quantized(self) -> tuple[Tensor, Tensor | None]:
        """The weight and bias as used in forward (on the grid)."""
        b = self.bias
        return (straight_through(self.weight, self.weight_bound, self.scale),
                None if b is None else straight_through(b, self.weight_bound, self.scale))

    def forward(self, x: Tensor) -> Tensor:
        weight, bias = self.quantized()
        wide = torch.matmul(straight_through(x, self.input_bound, self.scale).double(), weight.double().t())
        if bias is not None:
            wide = wide + bias.double()
        return wide.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class ExactConv2d(nn.Module):
    """A stride-1 2-D convolution computed exactly, like :class:`ExactLinear`.

    Shape: ``x [batch, in_channels, H, W]`` -> ``[batch, out_channels, H + 2p - k + 1, W + 2p - k + 1]``.
    The grid bounds hold for up to ``2**17`` terms per output (``in_channels * k * k``).
    """

    __constants__ = ["in_channels", "out_channels", "kernel_size", "padding", "scale", "input_bound",
                     "weight_bound"]

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0) -> None:
        super().__init__()
        for name, value, low in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                                 ("kernel_size", kernel_size, 1), ("padding", padding, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if in_channels * kernel_size * kernel_size > MAX_IN_FEATURES:
            raise ValueError(f"in_channels * kernel_size**2 must be <= {MAX_IN_FEATURES} for exact sums")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.padding = kernel_size, padding
        self.scale, self.input_bound, self.weight_bound = SCALE, INPUT_BOUND, WEIGHT_BOUND
        fan_in = in_channels * kernel_size * kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.uniform_(self.weight, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def quantized(self) -> tuple[Tensor, Tensor]:
        return (straight_through(self.weight, self.weight_bound, self.scale),
                straight_through(self.bias, self.weight_bound, self.scale))

    def forward(self, x: Tensor) -> Tensor:
        weight, bias = self.quantized()
        wide = torch.nn.functional.conv2d(straight_through(x, self.input_bound, self.scale).double(),
                                          weight.double(), bias.double(), padding=self.padding)
        return wide.to(x.dtype)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"padding={self.padding}")
