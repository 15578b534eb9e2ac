"""ExactLinear's compiled no-autograd step (``exact_linear_*``) and its PyTorch fallback give the formula's bits."""

import pytest
import torch
from torch import nn

from lif_export.fast import ccompile, kernel
from lif_export.network import ExactLinear
from tests.conftest import assert_bitwise_equal, exact_formula

TINY = {torch.float32: 1e-40, torch.float64: 1e-310}  # subnormal in each dtype


@pytest.fixture(params=["compiled", "torch"])
def implementation(request, monkeypatch):
    """Both implementations: the compiled loop (when a compiler exists) and, without a compiler, PyTorch's."""
    if request.param == "torch":
        monkeypatch.setenv("LIF_EXPORT_NO_COMPILE", "1")
    elif kernel.compiled().library is None:
        pytest.skip(f"no compiled kernel: {kernel.compiled().description}")
    ccompile.load.cache_clear()
    kernel.compiled.cache_clear()
    yield request.param
    monkeypatch.delenv("LIF_EXPORT_NO_COMPILE", raising=False)
    ccompile.load.cache_clear()
    kernel.compiled.cache_clear()


def hostile_layer(in_features: int, out_features: int, dtype: torch.dtype, seed: int, exponent: int = 0,
                  bias: bool = True, frozen: bool = True) -> ExactLinear:
    """Weights beyond the bound, -0.0, subnormal, rounding to +-0, a grid tie, an all-negative row with bias -0.0,
    and infinite when ``frozen`` (a parameter that requires a gradient makes its infinities NaN: ``x - x``)."""
    g = torch.Generator().manual_seed(seed)
    layer = ExactLinear(in_features, out_features, bias=bias, weight_exponent=exponent).to(dtype)
    layer.requires_grad_(not frozen)
    big = 20.0 * 2.0**exponent
    with torch.no_grad():
        layer.weight.uniform_(-big, big, generator=g)
        flat = layer.weight.view(-1)
        flat[1::5] *= 1e-6  # round to +-0 on the grid
        infinity = float("inf") if frozen else 1e30
        specials = [-0.0, infinity, -infinity, TINY[dtype], 2.0**exponent / 8192][: flat.numel()]
        flat[: len(specials)] = torch.tensor(specials, dtype=dtype)
        layer.weight[-1] = -layer.weight[-1].abs() - 2.0**exponent  # all negative: zero inputs sum to -0.0 products
        if bias:
            layer.bias.uniform_(-big, big, generator=g)
            layer.bias[-1] = -0.0
            layer.bias[0] = 0.0
    return layer


def hostile_inputs(batch: int, in_features: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """NaN-free values beyond +-256, +-inf, -0.0, subnormal, grid ties, an all-zero and an all -0.0 row."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(batch, in_features, generator=g, dtype=torch.float64) * 200).to(dtype)
    specials = [float("inf"), -float("inf"), -0.0, TINY[dtype], -TINY[dtype], 300.0, -1e30, 0.5 / 4096, 1.5 / 4096,
                -2.5 / 4096, -1e-5]
    specials = specials[: x.numel()]
    x.view(-1)[: len(specials)] = torch.tensor(specials, dtype=dtype)
    if batch > 2:
        x[1] = 0.0
        x[2] = -0.0
    return x


def check(layer: ExactLinear, x: torch.Tensor, what: str, ran: bool | None = None) -> None:
    """``layer(x)`` (twice: the cache built, then used) equals the formula; ``ran``: whether the loop took it."""
    with torch.no_grad():
        for attempt in range(2):
            assert_bitwise_equal(layer(x), exact_formula(layer, x), f"{what} (call {attempt})")
        loop = layer._cache[False]["kernel"]
        if ran is not None:
            assert (loop is not None and loop(layer, x) is not None) == ran, what


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exact_linear_step_equals_the_formula_on_hostile_values(implementation, dtype):
    compiled = implementation == "compiled"
    for seed, (batch, n_in, n_out, exponent) in enumerate([(1, 64, 128, 0), (5, 9, 4, 0), (4, 33, 7, 6),
                                                           (3, 17, 5, -20), (1, 2, 1, 0)]):
        for bias, frozen in ((True, True), (False, True), (True, False)):
            layer = hostile_layer(n_in, n_out, dtype, seed, exponent, bias, frozen)
            x = hostile_inputs(batch, n_in, dtype, seed)
            check(layer, x, f"{dtype} {batch}x{n_in}->{n_out} k={exponent} bias={bias} frozen={frozen}", ran=compiled)
            zeros = torch.zeros(batch, n_in, dtype=dtype)
            check(layer, zeros, "zero input", ran=compiled)
            check(layer, -zeros, "-0.0 input", ran=compiled)
            nan = x.clone()
            nan[0, -1] = float("nan")
            check(layer, nan, "a NaN input: PyTorch's operations", ran=False)
            layer.spike_input = True
            spikes = (torch.rand(batch, n_in, generator=torch.Generator().manual_seed(seed)) < 0.4).to(dtype)
            spikes[0] = 0.0
            check(layer, spikes, "spikes", ran=compiled)
            check(layer, -zeros, "-0.0 spikes", ran=compiled)
            spikes[-1, -1] = 0.5
            check(layer, spikes, "a spike input other than 0/1: PyTorch's operations", ran=False)


def test_exact_linear_step_declines_what_it_cannot_give_the_bits_of(implementation):
    """NaN weights, one input feature (PyTorch's one-term product keeps -0.0), more dims, other dtypes,
    non-contiguous inputs, autograd: PyTorch's operations, the formula's bits."""
    for frozen in (True, False):
        nan_weight = hostile_layer(6, 3, torch.float32, 0, frozen=frozen)
        with torch.no_grad():
            nan_weight.weight[1, 2] = float("nan") if frozen else float("inf")  # inf - inf: NaN
        check(nan_weight, hostile_inputs(3, 6, torch.float32, 0), f"NaN weight, frozen={frozen}", ran=False)
    one = ExactLinear(1, 4)
    with torch.no_grad():
        one.weight.copy_(-torch.rand(4, 1) - 0.5)
        one.bias.fill_(-0.0)
    for batch in (1, 3):
        check(one, torch.zeros(batch, 1), f"in_features=1, batch {batch}", ran=False)
    layer = hostile_layer(8, 5, torch.float32, 1)
    x = hostile_inputs(6, 8, torch.float32, 1)
    check(layer, x.view(2, 3, 8), "3-D input", ran=False)
    check(layer, hostile_inputs(9, 8, torch.float32, 1), "a batch above KERNEL_MAX_BATCH", ran=False)
    check(layer, x.t().contiguous().t(), "non-contiguous input", ran=False)
    with torch.no_grad():
        assert torch.equal(layer(x.half()).view(torch.int16), exact_formula(layer, x.half()).view(torch.int16))
    xg = x.clone().requires_grad_(True)
    y = layer(xg)
    assert y.grad_fn is not None
    assert_bitwise_equal(y, exact_formula(layer, xg), "input requiring a gradient")
    with torch.no_grad():
        mapped = torch.vmap(layer)(x.view(2, 3, 8))  # functorch wrappers have no storage for the loop
    assert_bitwise_equal(mapped, exact_formula(layer, x).view(2, 3, 5), "vmap")


def test_exact_linear_step_sees_every_change_of_the_parameters(implementation):
    layer = hostile_layer(7, 4, torch.float32, 2)
    x = hostile_inputs(3, 7, torch.float32, 2)
    changes = [
        ("in place", lambda: layer.weight.mul_(0.5)),
        (".data element", lambda: layer.weight.data.__setitem__((0, 0), -3.0)),
        ("bias sign of zero", lambda: layer.bias.data.__setitem__(0, -0.0)),
        (".data replaced", lambda: setattr(layer.weight, "data", torch.full((4, 7), 0.75))),
        ("load_state_dict", lambda: layer.load_state_dict({"weight": torch.ones(4, 7), "bias": torch.zeros(4)})),
        ("new parameter", lambda: setattr(layer, "weight", nn.Parameter(torch.full((4, 7), 0.25)))),
        ("bias removed", lambda: setattr(layer, "bias", None)),
        ("non-contiguous weight", lambda: setattr(layer.weight, "data", torch.rand(7, 4).t())),
    ]
    for what, change in changes:
        with torch.no_grad():
            change()
        check(layer, x, what)
