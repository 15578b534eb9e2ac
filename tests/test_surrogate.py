"""Surrogate gradients: analytic derivatives, unchanged forward bits, scripted backprop."""

import math

import pytest
import torch

from lif_export import SURROGATES, LIFCell, LIFSequence
from tests.conftest import assert_bitwise_equal

THETA = 1.0

# (surrogate, alpha, z, expected g(z)) computed by hand from the formulas.
ANALYTIC = [
    ("fast_sigmoid", 10.0, 0.0, 1.0),
    ("fast_sigmoid", 10.0, 0.1, 0.25),  # 1 / (1 + 1)^2
    ("fast_sigmoid", 10.0, -0.3, 1 / 16),  # 1 / (1 + 3)^2
    ("fast_sigmoid", 1.0, 1.0, 0.25),
    ("arctan", 2.0, 0.0, 1.0),
    ("arctan", 2.0, 1 / math.pi, 0.5),  # 1 / (1 + (pi/2 * 2 / pi)^2)
    ("arctan", 4.0, -1 / (2 * math.pi), 1.0),  # 2 / (1 + 1)
    ("sigmoid", 4.0, 0.0, 1.0),  # 4 * 1/2 * 1/2
    ("sigmoid", 1.0, math.log(3.0), 3 / 16),  # sig = 3/4
    ("triangle", 1.0, 0.25, 0.75),
    ("triangle", 1.0, -1.5, 0.0),
    ("triangle", 2.0, 0.25, 1.0),  # 2 * (1 - 0.5)
    ("straight_through", 1.0, 123.0, 1.0),
    ("straight_through", 0.5, -2.0, 0.5),
]


@pytest.mark.parametrize("surrogate, alpha, z, expected", ANALYTIC)
def test_backward_equals_analytic_derivative(surrogate, alpha, z, expected):
    cell = LIFCell(threshold=THETA, beta=0.5, surrogate=surrogate, surrogate_slope=alpha, dtype=torch.float64)
    x = torch.tensor([THETA + z], dtype=torch.float64, requires_grad=True)
    spike, _ = cell(x, torch.zeros(1, dtype=torch.float64))
    (grad,) = torch.autograd.grad(spike.sum(), x)
    assert grad.item() == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_every_surrogate_is_covered():
    assert {case[0] for case in ANALYTIC} == set(SURROGATES)


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
def test_surrogate_never_changes_forward_bits(surrogate, reset):
    x = torch.randn(40, 3, 8) * 2
    x[0, 0, :4] = torch.tensor([float("nan"), float("inf"), -float("inf"), 3e38])
    seq = LIFSequence(reset=reset, surrogate=surrogate, learn_threshold=True)
    with torch.no_grad():
        want = seq.forward_trace(x)
    got = seq.forward_trace(x.clone().requires_grad_(True))
    for g, w, name in zip(got, want, ["spikes", "v_T", "trace"], strict=True):
        assert_bitwise_equal(g, w, name)


def test_gradient_is_finite_at_non_finite_inputs():
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), 3e38, 0.5], requires_grad=True)
    for surrogate in SURROGATES:
        spike, _ = LIFCell(surrogate=surrogate)(x, torch.zeros(5))
        (grad,) = torch.autograd.grad(spike.sum(), x)
        assert torch.isfinite(grad).all(), (surrogate, grad)
        assert grad[:3].tolist() == [0.0, 0.0, 0.0]


def test_reset_is_detached():
    """With reset='subtract', d v_next / d u is 1 even when the neuron fires."""
    cell = LIFCell(threshold=1.0, beta=0.5, reset="subtract", dtype=torch.float64)
    x = torch.tensor([1.5, 0.2], dtype=torch.float64, requires_grad=True)
    _, v = cell(x, torch.zeros(2, dtype=torch.float64))
    (grad,) = torch.autograd.grad(v.sum(), x)
    assert grad.tolist() == [1.0, 1.0]


def test_gradcheck_on_the_membrane_path():
    """v_next is smooth in x and v away from the threshold: finite differences agree."""
    cell = LIFCell(threshold=10.0, beta=0.7, reset="subtract", learn_beta=True, dtype=torch.float64)
    x = torch.rand(6, dtype=torch.float64, requires_grad=True)
    v = torch.rand(6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: cell(a, b)[1], (x, v))
    # d sum(v_next) / d beta = sum(v)
    (grad,) = torch.autograd.grad(cell(x, v)[1].sum(), cell.beta)
    assert grad.item() == pytest.approx(v.sum().item(), rel=1e-12)


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
def test_scripted_module_backpropagates_identical_gradients(surrogate):
    kw = dict(beta=torch.full((8,), 0.8), threshold=torch.full((8,), 1.0), reset="subtract",
              learn_beta=True, learn_threshold=True, surrogate=surrogate)
    eager = LIFSequence(**kw)
    scripted = torch.jit.script(LIFSequence(**kw))
    x = torch.randn(25, 4, 8) + 0.4
    grads = []
    for module in (eager, scripted):
        xi = x.clone().requires_grad_(True)
        spikes, v_T = module(xi)
        (spikes.sum() * 0.5 + (v_T**2).sum()).backward()
        grads.append((xi.grad, module.beta.grad, module.threshold.grad))
    for g_eager, g_script, name in zip(*grads, ["x", "beta", "threshold"], strict=True):
        assert g_eager is not None and g_eager.abs().sum() > 0, name
        assert_bitwise_equal(g_script, g_eager, f"grad {name}")
