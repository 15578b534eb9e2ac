"""ExactLinear's one-node training step (``_ExactLinearStep``) gives the formula's autograd bits: outputs and the
gradients of the input, the weight and the bias, on hostile values, layouts and upstream gradients."""

import pytest
import torch
from torch import nn

from lif_export.network import ExactLinear
from tests.conftest import assert_bitwise_equal, exact_formula
from tests.test_exact_fast import TINY, hostile_inputs, hostile_layer


def upstream(shape: tuple[int, int], dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Gradients reaching the output ``[batch, out]`` (``out >= 4``), with sums that depend on their order:
    magnitudes from 1e-8 to 1e8, ``1e30`` and ``-1e30`` in outputs 0 and 2 of every row (the input's gradient
    cancels where the weight rows 0 and 2 are equal), ``1e30, 1, -1e30`` down output 1 (the weight's and bias's
    gradients over the batch); NaN, +-inf, -0.0, subnormal and zeros in the last output; a row of -0.0 and a row
    whose input gradient rounds to -0.0."""
    g = torch.Generator().manual_seed(seed)
    spread = torch.logspace(-8, 8, shape[1], dtype=torch.float64)
    grad = (torch.randn(shape, generator=g, dtype=torch.float64) * spread).to(dtype)
    grad[:, 0], grad[:, 2] = 1e30, -1e30
    grad[:3, 1] = torch.tensor([1e30, 1.0, -1e30], dtype=dtype)[: shape[0]]
    specials = torch.tensor([float("nan"), float("inf"), -0.0, TINY[dtype], 0.0, -float("inf")], dtype=dtype)
    grad[:, -1] = specials.repeat(shape[0])[: shape[0]]
    if shape[0] > 4:
        grad[4] = -0.0
        grad[3] = 0.0
        grad[3, 1] = -torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps  # the smallest subnormal
    return grad


def spikes(batch: int, features: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(batch, features, generator=g) > 0.5).to(dtype)
    if batch > 1:
        x[0] = 0.0  # an all-zero row: sums of +-0.0 products
    return x


def compare(make_layer, inputs: list[torch.Tensor], grads: list[torch.Tensor], spike_input: bool,
            name: str) -> ExactLinear:
    """Steps of one layer on ``inputs`` (the same parameters, as over time), then one backward with ``grads``:
    the outputs and every gradient equal the formula's, bit for bit. Returns the layer of the fast path."""
    seen = {}
    for path in ("fast", "formula"):
        layer = make_layer()
        layer.spike_input = spike_input
        xs = [x.detach().clone().requires_grad_(x.requires_grad) for x in inputs]
        outs = [layer(x) if path == "fast" else exact_formula(layer, x) for x in xs]
        if path == "fast":
            assert all(type(y.grad_fn).__name__ == "_ExactLinearStepBackward" for y in outs), name
            fast = layer
        torch.autograd.backward(outs, grads)
        seen[path] = [*outs, *(x.grad for x in xs if x.requires_grad),
                      *(p.grad for p in (layer.weight, layer.bias) if p is not None and p.requires_grad)]
    assert len(seen["fast"]) == len(seen["formula"]), name
    for i, (a, b) in enumerate(zip(seen["fast"], seen["formula"], strict=True)):
        if a.dtype == torch.float16:  # assert_bitwise_equal reads float32/float64
            assert a.dtype == b.dtype and torch.equal(a.view(torch.int16), b.view(torch.int16)), f"{name}: {i}"
        else:
            assert_bitwise_equal(a, b, f"{name}: tensor {i}")
    return fast


CASES = [  # (in, out, x dtype, parameter dtype, exponent, bias, spike input, x requires grad)
    (12, 7, torch.float32, torch.float32, 0, True, True, True),  # float32 products (every sum exact)
    (12, 7, torch.float32, torch.float32, 0, True, False, True),  # float64 products, input quantized
    (12, 7, torch.float32, torch.float32, 0, True, False, False),  # an input that needs no gradient (layer 1)
    (12, 7, torch.float32, torch.float32, -3, False, True, True),
    (9, 5, torch.float32, torch.float32, 5, True, False, True),
    (12, 7, torch.float64, torch.float64, 0, True, True, True),
    (12, 7, torch.float64, torch.float64, 2, True, False, True),
    (12, 7, torch.float64, torch.float32, 0, True, False, True),  # float32 parameters, float64 input
    (12, 7, torch.float32, torch.float64, 0, False, True, True),  # float64 parameters: float64 products
    (1, 4, torch.float32, torch.float32, 0, True, True, True),  # one input feature: mm's column-major branch
    (1, 4, torch.float32, torch.float32, 0, True, False, True),
]


@pytest.mark.parametrize("batch", [1, 6, 40])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v).replace("torch.", "") for v in c))
def test_exact_training_step_equals_the_formula(case, batch):
    n_in, n_out, dtype, param_dtype, exponent, bias, spike_input, x_grad = case

    def make_layer():
        layer = hostile_layer(n_in, n_out, param_dtype, seed=n_in + n_out, exponent=exponent, bias=bias, frozen=False)
        with torch.no_grad():
            if n_out > 2:
                layer.weight[2] = layer.weight[0]  # the input's gradient cancels: 1e30 * w - 1e30 * w
            if spike_input:  # every sum exact in float32: small weights (hostile_layer's go beyond the bound)
                layer.weight.mul_(0.01)
        return layer

    make = spikes if spike_input else hostile_inputs
    inputs = [make(batch, n_in, dtype, seed).requires_grad_(x_grad) for seed in range(3)]
    grads = [upstream((batch, n_out), dtype, seed) for seed in range(3)]
    layer = compare(make_layer, inputs, grads, spike_input, str(case))
    if spike_input and dtype == torch.float32:  # the float32 products were taken: every sum is exact
        assert "weight32_t" in layer._cache[True]


def test_exact_training_step_layouts_and_frozen_parameters():
    """Column-major inputs and weights (mm's other branches), a strided input, NaN weights and inputs (float64
    products), a frozen weight with a learned bias, autocast, and a half-precision input."""
    n_in, n_out, batch = 10, 40, 40  # enough terms for BLAS to sum in another order on another layout

    def layer_of(weight_t=False, nan=False, frozen_weight=False):
        def make():
            layer = hostile_layer(n_in, n_out, torch.float32, seed=3, frozen=False)
            with torch.no_grad():
                layer.weight[2] = layer.weight[0]
                layer.weight.mul_(0.01)
                if nan:
                    layer.weight[1, 2] = float("nan")
            if weight_t:
                layer.weight = nn.Parameter(layer.weight.detach().t().contiguous().t())
            layer.weight.requires_grad_(not frozen_weight)
            return layer
        return make

    def inputs(make, transposed=False, strided=False):
        xs = [make(n_in, batch, seed).t() if transposed else make(batch, 2 * n_in if strided else n_in, seed)
              for seed in range(2)]
        return [(x[:, ::2] if strided else x).requires_grad_(True) for x in xs]

    def hostile(rows, columns, seed):
        return hostile_inputs(rows, columns, torch.float32, seed)

    def spiking(rows, columns, seed):
        return spikes(rows, columns, torch.float32, seed)

    grads = [upstream((batch, n_out), torch.float32, seed) for seed in range(2)]
    compare(layer_of(), inputs(spiking, transposed=True), grads, True, "column-major spike input")
    compare(layer_of(), inputs(hostile, transposed=True), grads, False, "column-major input")
    compare(layer_of(), inputs(hostile, strided=True), grads, False, "strided input")
    compare(layer_of(weight_t=True), inputs(spiking), grads, True, "column-major weight")
    compare(layer_of(nan=True), inputs(spiking), grads, True, "a NaN weight")
    with_nan = [hostile(batch, n_in, seed) for seed in range(2)]
    with_nan[0][1, 3] = float("nan")
    compare(layer_of(), [x.requires_grad_(True) for x in with_nan], grads, False, "a NaN input")
    compare(layer_of(frozen_weight=True), inputs(spiking), grads, True, "frozen weight")
    with torch.autocast("cpu", dtype=torch.bfloat16):  # would turn float32 products into bfloat16 ones
        compare(layer_of(), inputs(spiking), grads, True, "autocast")
    half = [hostile(batch, n_in, seed).clamp(-60000, 60000).half().requires_grad_(True) for seed in range(2)]
    compare(layer_of(), half, [g.half() for g in grads], False, "half-precision input")


def test_exact_training_step_second_derivatives_equal_the_formula():
    """``create_graph``: the gradient of a gradient (the input's, through the weights) equals the formula's."""
    seen = {}
    for path in ("fast", "formula"):
        torch.manual_seed(2)
        layer = ExactLinear(8, 5)
        layer.spike_input = True
        x = spikes(4, 8, torch.float32, 1).requires_grad_(True)
        y = layer(x) if path == "fast" else exact_formula(layer, x)
        (grad_x,) = torch.autograd.grad(y, x, upstream((4, 5), torch.float32, 0).nan_to_num(0, 0, 0) + 1,
                                        create_graph=True)
        (grad_x ** 2).sum().backward()
        assert layer.bias is not None
        seen[path] = [y, grad_x, layer.weight.grad, layer.bias.grad]
    for i, (a, b) in enumerate(zip(seen["fast"], seen["formula"], strict=True)):
        if a is None or b is None:
            assert a is None and b is None, f"tensor {i}"
        else:
            assert_bitwise_equal(a, b, f"tensor {i}")
