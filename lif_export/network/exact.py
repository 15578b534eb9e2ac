"""``ExactLinear``: a linear layer whose result is the same bits on every backend.

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

import numpy as np
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

    def to_onnx(self, g, x: str, dtype: str, hint: str) -> str:  # noqa: ANN001 - an onnx_builder.Graph
        """The same operations as ``forward``: clip, scale, round, unscale, float64 MatMul and Add, cast back."""
        from ..export.onnx_builder import ONNX_DTYPES

        np_dtype = np.float32 if dtype == "float32" else np.float64
        lo = g.const(f"{hint}input_min", np.array(-self.input_bound, np_dtype))
        hi = g.const(f"{hint}input_max", np.array(self.input_bound, np_dtype))
        scale = g.const(f"{hint}scale", np.array(self.scale, np_dtype))
        q = g.op("Div", [g.op("Round", [g.op("Mul", [g.op("Clip", [x, lo, hi], f"{hint}clip"), scale],
                                                  f"{hint}scaled")], f"{hint}rounded"), scale], f"{hint}xq")
        with torch.no_grad():
            weight, bias = self.quantized()
        wide = g.op("MatMul", [g.op("Cast", [q], f"{hint}x64", to=ONNX_DTYPES["float64"]),
                               g.const(f"{hint}weight_t", weight.double().t().contiguous().numpy())], f"{hint}xw")
        if bias is not None:
            wide = g.op("Add", [wide, g.const(f"{hint}bias", bias.double().numpy())], f"{hint}xw_b")
        return g.op("Cast", [wide], f"{hint}linear", to=ONNX_DTYPES[dtype])

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
