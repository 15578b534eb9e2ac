"""The three modules: scripted equals eager bit for bit; the stateful API."""

import io

import pytest
import torch

from lif_export import LIFCell, LIFNeuron, LIFSequence
from tests.conftest import assert_bitwise_equal

SHAPES = [(16,), (4, 16), (2, 3, 5, 16)]


def params(per_neuron: bool, reset: str):
    if not per_neuron:
        return dict(threshold=1.0, beta=0.9, v_reset=-0.1, reset=reset)
    return dict(threshold=torch.linspace(0.5, 1.5, 16), beta=torch.linspace(0.0, 1.0, 16),
                v_reset=torch.linspace(-0.2, 0.2, 16), reset=reset)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("per_neuron", [False, True])
@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
def test_scripted_equals_eager_for_all_modules(shape, per_neuron, reset):
    kw = params(per_neuron, reset)
    x = torch.randn(30, *shape) * 0.5 + 0.35

    seq = LIFSequence(**kw)
    spikes, v_T, trace = seq.forward_trace(x)
    s_spikes, s_v, s_trace = torch.jit.script(seq).forward_trace(x)
    assert_bitwise_equal(s_spikes, spikes, "LIFSequence spikes")
    assert_bitwise_equal(s_trace, trace, "LIFSequence trace")
    assert_bitwise_equal(s_v, v_T, "LIFSequence v_T")
    assert spikes.sum() > 0

    cell, neuron = LIFCell(**kw), LIFNeuron(**kw)
    modules = [cell, torch.jit.script(cell)]
    stateful = [neuron, torch.jit.script(LIFNeuron(**kw))]
    vs = [torch.zeros(shape) for _ in modules]
    vs_step = [torch.zeros(shape) for _ in stateful]
    for t in range(x.shape[0]):
        for i, m in enumerate(modules):
            s, vs[i] = m(x[t], vs[i])
            assert_bitwise_equal(s, spikes[t], f"{type(m).__name__} step {t}")
            assert_bitwise_equal(vs[i], trace[t], f"{type(m).__name__} v step {t}")
        for i, m in enumerate(stateful):
            assert_bitwise_equal(m(x[t]), spikes[t], f"LIFNeuron.forward step {t}")
            assert_bitwise_equal(m.potential, trace[t], f"LIFNeuron.potential step {t}")
            assert_bitwise_equal(m.spike, spikes[t], f"LIFNeuron.spike step {t}")
            s, vs_step[i] = m.step(x[t], vs_step[i])
            assert_bitwise_equal(vs_step[i], trace[t], f"LIFNeuron.step step {t}")


def test_seed_neuron_state_takes_shape_persists_and_resets():
    neuron = LIFNeuron(threshold=1.0, beta=0.9)
    assert neuron.potential.numel() == 0
    neuron(torch.full((2, 3), 0.6))
    assert neuron.potential.shape == (2, 3)
    assert neuron(torch.full((2, 3), 0.6)).tolist() == [[1.0] * 3] * 2  # 0.9*0.6+0.6 = 1.14 > 1
    with pytest.raises(ValueError, match=r"input_current of shape .* reset_state"):
        neuron(torch.ones(5))
    neuron.reset_state()
    assert neuron(torch.ones(5) * 0.5).tolist() == [0.0] * 5


def test_seed_neuron_state_survives_state_dict_and_dtype_change():
    neuron = LIFNeuron()
    for _ in range(3):
        neuron(torch.full((4,), 0.3))
    buf = io.BytesIO()
    torch.save(neuron.state_dict(), buf)
    buf.seek(0)
    restored = LIFNeuron()
    restored.load_state_dict(torch.load(buf))
    assert_bitwise_equal(restored.potential, neuron.potential)
    assert_bitwise_equal(restored(torch.full((4,), 0.3)), neuron(torch.full((4,), 0.3)))

    as64 = restored.to(torch.float64)
    assert as64.potential.dtype == torch.float64 and as64.beta.dtype == torch.float64
    as64(torch.full((4,), 0.3, dtype=torch.float64))


def test_scripted_neuron_roundtrips_through_save_and_load():
    scripted = torch.jit.script(LIFNeuron(threshold=0.8, beta=0.7, reset="subtract"))
    buf = io.BytesIO()
    torch.jit.save(scripted, buf)
    buf.seek(0)
    loaded = torch.jit.load(buf)
    x = torch.full((3,), 0.5)
    assert_bitwise_equal(loaded(x), scripted(x))
    s, v = loaded.step(x, torch.zeros(3))
    assert s.shape == (3,) and v.shape == (3,)
    loaded.reset_state()
    assert loaded.potential.numel() == 0


def test_learned_parameters_are_clamped_in_forward():
    cell = LIFCell(beta=0.5, threshold=1.0, learn_beta=True, learn_threshold=True)
    assert isinstance(cell.beta, torch.nn.Parameter) and isinstance(cell.threshold, torch.nn.Parameter)
    with torch.no_grad():
        cell.beta.fill_(1.7)
        cell.threshold.fill_(-3.0)
    beta, threshold, _ = cell.neuron_parameters()
    assert beta.item() == 1.0 and threshold.item() > 0
    torch.jit.script(cell)(torch.ones(2), torch.zeros(2))


def test_repr_names_parameters():
    text = repr(LIFCell(threshold=torch.ones(4), reset="subtract"))
    assert "per-neuron(4,)" in text and "'subtract'" in text


def test_negative_zero_reset_potential_is_stored_as_positive_zero():
    """onnxruntime's Where drops the sign of a selected -0.0; the modules normalise the parameter."""
    assert not torch.signbit(LIFCell(v_reset=-0.0).v_reset)
    per_neuron = LIFNeuron(v_reset=torch.tensor([-0.0, -1.0])).v_reset
    assert torch.signbit(per_neuron).tolist() == [False, True] and per_neuron.tolist() == [0.0, -1.0]
