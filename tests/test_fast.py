"""Fast paths give the reference's bits: forward, gradients, streaming."""

import numpy as np
import pytest
import torch

from lif_export import SURROGATES, LIFSequence, lif_sequence
from lif_export.backends import EagerSequence
from lif_export.backends.ort_stream import OnnxStepStream
from lif_export.cases import CASES
from lif_export.export import NeuronSpec
from lif_export.export.model import NeuronModel
from lif_export.fast import LIFSequenceFunction, simulate
from tests.conftest import assert_bitwise_equal

SPECIAL = [CASES[name] for name in ("special_values", "near_threshold_1ulp", "huge", "subnormal", "zeros")]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
@pytest.mark.parametrize("per_neuron", [False, True])
def test_simulate_equals_reference_on_adversarial_suites(dtype, reset, per_neuron):
    spec = NeuronSpec(beta=[0.0, 0.5, 0.9, 1.0] * 2 if per_neuron else 0.9,
                      threshold=[0.5, 1.0, 2.0, 1e-3] * 2 if per_neuron else 1.0,
                      v_reset=[-0.5, 0.0, 0.25, 1.0] * 2 if per_neuron else -0.5, reset=reset, dtype=dtype)
    p = spec.parameter_tensors()
    for suite in SPECIAL:
        x, states = suite.build(NeuronModel(spec).signature(), full=False)
        want = EagerSequence(spec).run(x, states)
        spikes, v, trace = simulate(torch.from_numpy(x), torch.from_numpy(states["v"]), p["beta"], p["threshold"],
                                    p["v_reset"], reset, return_trace=True)
        assert_bitwise_equal(spikes, want["spike"], f"{suite.name} spikes")
        assert_bitwise_equal(trace, want["v_trace"], f"{suite.name} trace")
        assert_bitwise_equal(v, want["v_next"], f"{suite.name} v")


def test_simulate_reuses_out_and_checks_it():
    x = torch.rand(10, 3, 4)
    out = torch.empty_like(x)
    p = (torch.tensor(0.9), torch.tensor(1.0), torch.tensor(0.0))
    spikes, _, _ = simulate(x, None, *p, out=out)
    assert spikes.data_ptr() == out.data_ptr()
    with pytest.raises(ValueError, match=r"out must have x's shape \[10, 3, 4\]"):
        simulate(x, None, *p, out=torch.empty(3))
    with pytest.raises(ValueError, match="v \\(membrane potential\\) of shape"):
        simulate(x, torch.zeros(5), *p)


def _grads(module_or_fn, x, v0, weights, weight_v):
    xi = x.clone().requires_grad_(True)
    vi = v0.clone().requires_grad_(True)
    spikes, v = module_or_fn(xi, vi)
    loss = (spikes * weights).sum()
    if weight_v is not None:
        loss = loss + (v * weight_v).sum()
    loss.backward()
    return spikes, v, xi.grad, vi.grad


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("use_state", [True, False])
def test_bptt_gradients_equal_autograd_bit_for_bit(surrogate, reset, dtype, use_state):
    seq = LIFSequence(reset=reset, v_reset=-0.25, surrogate=surrogate, dtype=dtype)
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(40, 4, 16, generator=g) * 0.7 + 0.3).to(dtype)
    x[5, 0, :6] = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 0.0, 1e30]).to(dtype)
    v0 = (torch.randn(4, 16, generator=g) * 0.5).to(dtype)
    weights = torch.randn(x.shape, generator=g).to(dtype)
    weight_v = torch.randn(v0.shape, generator=g).to(dtype) if use_state else None

    def reference(xi, vi):
        b, t, r = seq.neuron_parameters()
        spikes, v, _ = lif_sequence(xi, vi, b, t, r, reset, surrogate, seq.surrogate_slope)
        return spikes, v

    fast = _grads(seq, x, v0, weights, weight_v)
    want = _grads(reference, x, v0, weights, weight_v)
    for got, expected, name in zip(fast, want, ["spikes", "v_T", "grad x", "grad v0"], strict=True):
        assert_bitwise_equal(got, expected, name)


def test_eager_sequence_takes_the_fast_paths():
    seq = LIFSequence()
    x = torch.rand(5, 2, 3, requires_grad=True)
    spikes, _ = seq(x)
    assert "LIFSequenceFunction" in type(spikes.grad_fn).__name__
    learned = LIFSequence(learn_beta=True)
    spikes, _ = learned(x)
    assert "LIFSequenceFunction" not in type(spikes.grad_fn).__name__  # autograd loop for learned parameters
    spikes.sum().backward()
    assert learned.beta.grad is not None


def test_bptt_broadcast_initial_state_gradient():
    seq = LIFSequence(reset="subtract")
    x = torch.rand(12, 3, 5) + 0.2
    v0 = torch.zeros(5)
    fast = _grads(seq, x, v0, torch.ones(12, 3, 5), torch.ones(3, 5))

    def reference(xi, vi):
        s, v, _ = lif_sequence(xi, vi, seq.beta, seq.threshold, seq.v_reset, "subtract")
        return s, v

    want = _grads(reference, x, v0, torch.ones(12, 3, 5), torch.ones(3, 5))
    assert fast[3].shape == (5,)
    assert_bitwise_equal(fast[3], want[3], "grad v0")


def test_function_can_be_applied_directly():
    x = torch.rand(6, 4, requires_grad=True)
    p = (torch.tensor(0.9), torch.tensor(1.0), torch.tensor(0.0))
    spikes, v = LIFSequenceFunction.apply(x, torch.zeros(4), *p, "zero", "fast_sigmoid", 10.0)
    spikes.sum().backward()
    assert x.grad.shape == x.shape


def test_onnx_stream_equals_eager_steps(exported):
    stream = OnnxStepStream(exported, (2, 8))
    x = np.random.default_rng(0).normal(0.4, 0.5, size=(50, 2, 8)).astype(np.float32)
    want = EagerSequence(NeuronSpec()).run(x, {"v": np.zeros((2, 8), np.float32)})
    for t in range(50):
        assert_bitwise_equal(stream.step(x[t]), want["spike"][t], f"spike {t}")
        assert_bitwise_equal(stream.state("v"), want["v_trace"][t], f"v {t}")
    stream.reset(v=np.full((2, 8), 0.5, np.float32))
    assert stream.state("v")[0, 0] == 0.5
    stream.reset()
    assert not stream.state("v").any()


def test_onnx_stream_rejects_bad_configuration(exported):
    with pytest.raises(ValueError, match="artifact must be an ONNX step graph"):
        OnnxStepStream(exported, (1, 8), artifact="onnx_sequence")
    with pytest.raises(ValueError, match="shape must fit x's"):
        OnnxStepStream(exported, (1, 8, 3))
