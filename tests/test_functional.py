"""The functional core against hand-computed sequences and an independent NumPy reference."""

import numpy as np
import pytest
import torch

from lif_export import lif_sequence, lif_step
from lif_export.reference import reference_sequence
from tests.conftest import assert_bitwise_equal

DTYPES = [torch.float32, torch.float64]


def run_steps(x, v0, reset, beta=0.5, threshold=1.0, v_reset=0.0):
    spikes, potentials = [], []
    v = v0
    p = {k: torch.tensor(val, dtype=x.dtype) for k, val in
         dict(beta=beta, threshold=threshold, v_reset=v_reset).items()}
    for t in range(x.shape[0]):
        s, v = lif_step(x[t], v, p["beta"], p["threshold"], p["v_reset"], reset)
        spikes.append(s)
        potentials.append(v)
    return torch.stack(spikes), torch.stack(potentials)


# beta = 0.5 keeps every value below exactly representable, so these are exact.
# Step 0 lands exactly on the threshold (u == 1.0): strictly greater means no spike.
HAND_X = [1.0, 0.25, 0.5, 1.0, 0.0]
HAND = {
    #            u:  1.0   0.75   0.875  1.4375   (next u)
    "zero": ([0, 0, 0, 1, 0], [1.0, 0.75, 0.875, 0.0, 0.0]),
    "subtract": ([0, 0, 0, 1, 0], [1.0, 0.75, 0.875, 0.4375, 0.21875]),
    "none": ([0, 0, 0, 1, 0], [1.0, 0.75, 0.875, 1.4375, 0.71875]),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reset", sorted(HAND))
def test_hand_computed_sequence(reset, dtype):
    x = torch.tensor(HAND_X, dtype=dtype).unsqueeze(1)
    spikes, potentials = run_steps(x, torch.zeros(1, dtype=dtype), reset)
    want_s, want_v = HAND[reset]
    assert_bitwise_equal(spikes[:, 0], torch.tensor(want_s, dtype=dtype), "spikes")
    assert_bitwise_equal(potentials[:, 0], torch.tensor(want_v, dtype=dtype), "potentials")


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_reset_uses_v_reset_and_resets_infinite_u(dtype):
    x = torch.tensor([2.0, float("inf"), 0.5], dtype=dtype)
    s, v = lif_step(x, torch.zeros(3, dtype=dtype), torch.tensor(0.5, dtype=dtype),
                    torch.tensor(1.0, dtype=dtype), torch.tensor(-0.25, dtype=dtype), "zero")
    assert s.tolist() == [1.0, 1.0, 0.0]
    assert v.tolist() == [-0.25, -0.25, 0.5]  # a select, not arithmetic: inf still resets


def test_nan_input_never_spikes_and_propagates():
    x = torch.tensor([float("nan"), float("-inf")])
    for reset in ("zero", "subtract", "none"):
        s, v = lif_step(x, torch.zeros(2), torch.tensor(0.9), torch.tensor(1.0), torch.tensor(0.0), reset)
        assert s.tolist() == [0.0, 0.0]
        assert torch.isnan(v[0]) and v[1] == float("-inf")


def test_float32_parameters_round_to_input_dtype():
    """0.9 is not representable: a float32 run must use float32(0.9), like the graphs."""
    x = torch.full((4,), 0.3, dtype=torch.float32)
    v = torch.full((4,), 0.7, dtype=torch.float32)
    _, got = lif_step(x, v, torch.tensor(0.9, dtype=torch.float64), torch.tensor(10.0),
                      torch.tensor(0.0), "none")
    want = np.float32(0.9) * np.float32(0.7) + np.float32(0.3)
    assert got.dtype == torch.float32
    assert got[0].item() == float(want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
def test_random_against_numpy_reference(reset, dtype):
    x = torch.randn(50, 3, 7, dtype=dtype) * 0.6 + 0.2
    beta = torch.rand(7, dtype=dtype)
    threshold = torch.rand(3, 1, dtype=dtype) + 0.5
    v_reset = torch.tensor(-0.1, dtype=dtype)
    v0 = torch.randn(3, 7, dtype=dtype)
    spikes, v_T, trace = lif_sequence(x, v0, beta, threshold, v_reset, reset, return_trace=True)
    r_s, r_v, r_trace = reference_sequence(x.numpy(), v0.numpy(), beta.numpy(), threshold.numpy(),
                                           v_reset.numpy(), reset)
    assert spikes.sum() > 0
    assert_bitwise_equal(spikes, r_s, "spikes")
    assert_bitwise_equal(v_T, r_v, "v_T")
    assert_bitwise_equal(trace, r_trace, "trace")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
def test_sequence_equals_steps_and_chunks(reset, dtype):
    x = torch.randn(64, 4, 5, dtype=dtype) + 0.3
    p = (torch.tensor(0.85, dtype=dtype), torch.tensor(1.0, dtype=dtype), torch.tensor(0.0, dtype=dtype))
    v0 = torch.zeros(4, 5, dtype=dtype)
    spikes, v_T, trace = lif_sequence(x, v0, *p, reset, return_trace=True)

    step_spikes, step_v = run_steps(x, v0, reset, 0.85, 1.0, 0.0)
    assert_bitwise_equal(spikes, step_spikes, "sequence vs steps: spikes")
    assert_bitwise_equal(trace, step_v, "sequence vs steps: trace")

    chunks, v = [], v0
    for chunk in torch.split(x, [1, 7, 20, 36]):
        s, v, _ = lif_sequence(chunk, v, *p, reset)
        chunks.append(s)
    assert_bitwise_equal(torch.cat(chunks), spikes, "chunked vs unsplit: spikes")
    assert_bitwise_equal(v, v_T, "chunked vs unsplit: v_T")


def test_empty_sequence_returns_initial_state():
    x = torch.zeros(0, 2, 3)
    spikes, v_T, trace = lif_sequence(x, torch.full((3,), -0.0), torch.tensor(0.9), torch.tensor(1.0),
                                      torch.tensor(0.0), return_trace=True)
    assert spikes.shape == (0, 2, 3) and trace is not None and trace.shape == (0, 2, 3)
    assert v_T.shape == (2, 3) and torch.signbit(v_T).all()


def test_functional_core_is_scriptable_and_identical():
    scripted_step = torch.jit.script(lif_step)
    scripted_seq = torch.jit.script(lif_sequence)
    x = torch.randn(20, 8) + 0.4
    p = (torch.tensor(0.9), torch.tensor(1.0), torch.tensor(0.0))
    s1, v1, _ = lif_sequence(x, torch.zeros(8), *p, "subtract")
    s2, v2, _ = scripted_seq(x, torch.zeros(8), *p, "subtract")
    assert_bitwise_equal(s1, s2)
    assert_bitwise_equal(v1, v2)
    s3, v3 = scripted_step(x[0], torch.zeros(8), *p, "subtract")
    s4, v4 = lif_step(x[0], torch.zeros(8), *p, "subtract")
    assert_bitwise_equal(s3, s4)
    assert_bitwise_equal(v3, v4)
