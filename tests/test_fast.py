"""Fast paths give the reference's bits: forward, gradients, streaming."""

import copy
import io

import numpy as np
import pytest
import torch
from torch import nn

from lif_export import SURROGATES, LIFSequence, lif_sequence
from lif_export.backends import EagerSequence
from lif_export.backends.ort_stream import OnnxStepStream
from lif_export.cases import CASES
from lif_export.export import NeuronSpec
from lif_export.export.model import NeuronModel
from lif_export.fast import LIFSequenceFunction, simulate
from lif_export.fast.kernel import compiled
from lif_export.network import (
    ExactConv2d,
    ExactLinear,
    LeakyIntegratorLayer,
    LIFLayer,
    SpikingSequential,
    Stateless,
    SynapticLIFLayer,
)
from tests.conftest import assert_bitwise_equal, exact_formula

SPECIAL = [CASES[name] for name in ("special_values", "near_threshold_1ulp", "huge", "subnormal", "zeros")]


def needs_compiler(implementation: str) -> None:
    if implementation == "compiled" and compiled().library is None:
        pytest.skip(f"the compiled kernel is unavailable: {compiled().description}")


@pytest.mark.parametrize("implementation", ["compiled", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
@pytest.mark.parametrize("per_neuron", [False, True])
def test_simulate_equals_reference_on_adversarial_suites(dtype, reset, per_neuron, implementation):
    needs_compiler(implementation)
    spec = NeuronSpec(beta=[0.0, 0.5, 0.9, 1.0] * 2 if per_neuron else 0.9,
                      threshold=[0.5, 1.0, 2.0, 1e-3] * 2 if per_neuron else 1.0,
                      v_reset=[-0.5, 0.0, 0.25, 1.0] * 2 if per_neuron else -0.5, reset=reset, dtype=dtype)
    p = spec.parameter_tensors()
    for suite in SPECIAL:
        x, states = suite.build(NeuronModel(spec).signature(), full=False)
        want = EagerSequence(spec).run(x, states)
        spikes, v, trace = simulate(torch.from_numpy(x), torch.from_numpy(states["v"]), p["beta"], p["threshold"],
                                    p["v_reset"], reset, return_trace=True, implementation=implementation)
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


def _grads(module_or_fn, x, v0, weights, weight_v, params=()):
    for p in params:
        p.grad = None
    xi = x.clone().requires_grad_(True)
    vi = v0.clone().requires_grad_(True)
    spikes, v = module_or_fn(xi, vi)
    loss = (spikes * weights).sum()
    if weight_v is not None:
        loss = loss + (v * weight_v).sum()
    loss.backward()
    return spikes, v, xi.grad, vi.grad, *(p.grad for p in params)


@pytest.mark.parametrize("surrogate", sorted(SURROGATES))
@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("use_state", [True, False])
@pytest.mark.parametrize("learned", [False, "scalar", "per_neuron"])
def test_bptt_gradients_equal_autograd_bit_for_bit(surrogate, reset, dtype, use_state, learned):
    """x, v0 and (learned) beta and threshold: the hand-written backward (the compiled kernel, or the
    TorchScript loop for the sigmoid) equals autograd on the reference loop."""
    options = {"learn_beta": True, "learn_threshold": True} if learned else {}
    if learned == "per_neuron":
        options.update(beta=[0.5, 0.9, 0.95, 1.0] * 4, threshold=[1.0, 0.5] * 8)
    seq = LIFSequence(reset=reset, v_reset=-0.25, surrogate=surrogate, dtype=dtype, **options)
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

    params = list(seq.parameters())
    fast = _grads(seq, x, v0, weights, weight_v, params)
    assert "LIFSequenceFunction" in type(fast[0].grad_fn).__name__
    want = _grads(reference, x, v0, weights, weight_v, params)
    names = ["spikes", "v_T", "grad x", "grad v0", *(f"grad {n}" for n, _ in seq.named_parameters())]
    for got, expected, name in zip(fast, want, names, strict=True):
        assert_bitwise_equal(got, expected, name)


def test_bptt_without_a_compiler_learned_parameters(monkeypatch):
    """The TorchScript backward loop (no compiler) gives the same learned-parameter gradients."""
    from lif_export.fast import ccompile, kernel

    monkeypatch.setenv("LIF_EXPORT_NO_COMPILE", "1")
    ccompile.load.cache_clear()
    kernel.compiled.cache_clear()
    try:
        for reset in ("zero", "subtract"):
            test_bptt_gradients_equal_autograd_bit_for_bit("fast_sigmoid", reset, torch.float32, True, "per_neuron")
    finally:
        monkeypatch.delenv("LIF_EXPORT_NO_COMPILE")
        ccompile.load.cache_clear()
        kernel.compiled.cache_clear()


def test_eager_sequence_takes_the_fast_paths():
    seq = LIFSequence()
    x = torch.rand(5, 2, 3, requires_grad=True)
    spikes, _ = seq(x)
    assert "LIFSequenceFunction" in type(spikes.grad_fn).__name__
    learned = LIFSequence(learn_beta=True)
    spikes, _ = learned(x)
    assert "LIFSequenceFunction" in type(spikes.grad_fn).__name__
    spikes.sum().backward()
    assert learned.beta.grad is not None
    _, _, trace = learned.forward_trace(x)  # a trace with gradients: the autograd loop
    assert "LIFSequenceFunction" not in type(trace.grad_fn).__name__


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


NAN_A = {np.float32: 0x7FC00123, np.float64: 0x7FF8000000000123}
NAN_B = {np.float32: 0xFFC00456, np.float64: 0xFFF8000000000456}


def nan(dtype, bits):
    return np.array(bits[dtype], np.uint32 if dtype == np.float32 else np.uint64).view(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
def test_nan_state_meeting_nan_input_keeps_the_inputs_payload_on_every_path(dtype, reset):
    """``beta * v + x`` with both NaN: PyTorch's add returns x's payload; every fast path must too
    (37 neurons: vector bodies and scalar tails)."""
    rng = np.random.default_rng(5)
    x = rng.normal(0.5, 0.6, size=(6, 37)).astype(dtype)
    v0 = rng.normal(0.0, 0.5, size=37).astype(dtype)
    v0[::3] = nan(dtype, NAN_A)
    x[1, ::2], x[3, 1::2], x[2, ::5], x[4, ::4] = nan(dtype, NAN_B), nan(dtype, NAN_A), np.inf, -np.inf
    xt, vt = torch.from_numpy(x), torch.from_numpy(v0)
    p = [torch.tensor(value, dtype=xt.dtype) for value in (0.9, 1.0, -0.5 if reset == "zero" else 0.0)]
    want = lif_sequence(xt, vt, *p, reset=reset, return_trace=True)
    runs = {impl: simulate(xt, vt, *p, reset=reset, return_trace=True, implementation=impl)
            for impl in ("compiled", "torch") if impl == "torch" or compiled().library is not None}
    scripted = torch.jit.script(LIFSequence(beta=0.9, threshold=1.0, v_reset=p[2].item(), reset=reset,
                                            dtype=xt.dtype))
    with torch.no_grad():
        runs["scripted"] = scripted.forward_trace(xt, vt)
    for name, got in runs.items():
        for a, b, field in zip(got, want, ("spikes", "v_T", "v_trace"), strict=True):
            assert_bitwise_equal(a, b, f"{name} {field}")


@pytest.mark.parametrize("v_reset, threshold", [(0.0, 1.0), (-0.5, 1.0), (0.5, 0.25), (-0.0, 1.0),
                                                ([0.0, 0.5, -0.25, 2.0], [1.0, 0.25, 0.5, 1.5])])
def test_scripted_sequence_without_gradients_runs_the_in_place_loop(v_reset, threshold):
    """The three resets of the PyTorch loop (clamp, clamp plus the negative reset, where) give eager's bits."""
    seq = LIFSequence(beta=0.8, threshold=threshold, v_reset=v_reset)
    scripted = torch.jit.script(seq)
    assert "simulate_script" in scripted._run.code
    x, _ = SPECIAL[0].build(NeuronModel(NeuronSpec(beta=0.8, threshold=threshold, v_reset=v_reset)).signature(),
                            full=False)
    x = torch.from_numpy(x)
    with torch.no_grad():
        for got, want, field in zip(scripted.forward_trace(x), seq.forward_trace(x), ("spikes", "v_T", "trace"),
                                    strict=True):
            assert_bitwise_equal(got, want, field)
    spikes, _ = scripted(x.clone().requires_grad_(True))  # with a gradient: the autograd loop
    assert spikes.grad_fn is not None


def test_without_a_compiler_the_pytorch_loop_runs(monkeypatch):
    from lif_export.fast import ccompile, kernel

    monkeypatch.setenv("LIF_EXPORT_NO_COMPILE", "1")
    ccompile.load.cache_clear()
    kernel.compiled.cache_clear()
    try:
        assert compiled().library is None and "LIF_EXPORT_NO_COMPILE" in compiled().description
        x = torch.rand(30, 2, 5) * 0.7
        p = (torch.tensor(0.9), torch.tensor(1.0), torch.tensor(0.0))
        for got, want in zip(simulate(x, None, *p)[:2], lif_sequence(x, torch.zeros(2, 5), *p)[:2], strict=True):
            assert_bitwise_equal(got, want)
        with pytest.raises(RuntimeError, match="the compiled kernel cannot run this call"):
            simulate(x, None, *p, implementation="compiled")
        with pytest.raises(ValueError, match=r"implementation must be one of \['auto', 'compiled', 'torch'\]"):
            simulate(x, None, *p, implementation="fastest")
    finally:
        monkeypatch.delenv("LIF_EXPORT_NO_COMPILE")
        ccompile.load.cache_clear()
        kernel.compiled.cache_clear()


# -- exact layers: cached weights, spike inputs, one-node straight-through ----------------------------


class Formula(nn.Module):
    """An exact layer computed by :func:`~tests.conftest.exact_formula` (the same parameters)."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return exact_formula(self.layer, x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exact_linear_fast_paths_equal_the_formula(dtype):
    g = torch.Generator().manual_seed(2)
    small = ExactLinear(40, 7).to(dtype)  # sums exact in float32: the float32 product for spikes
    big = ExactLinear(3000, 5).to(dtype)  # |weights| up to 16: float64 only
    with torch.no_grad():
        small.weight[0] = -small.weight[0].abs() - 0.01  # an all-negative row, bias -0: zero sums keep +0
        small.bias[0] = -0.0
        big.weight.uniform_(-16, 16, generator=g)
    spikes = (torch.rand(9, 40, generator=g) < 0.3).to(dtype)
    spikes[0] = 0.0
    special = torch.randn(9, 40, generator=g, dtype=dtype) * 300
    special[0, :5] = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 1e-30], dtype=dtype)
    with torch.no_grad():
        for layer, x in ((small, spikes), (small, special), (big, (torch.rand(4, 3000, generator=g) < 0.5).to(dtype))):
            for spike_input in (False, True) if x is not special else (False,):
                layer.spike_input = spike_input
                assert_bitwise_equal(layer(x), exact_formula(layer, x), f"{layer} on {x.shape}")
                assert_bitwise_equal(torch.jit.script(layer)(x), exact_formula(layer, x), f"scripted {layer}")
    assert "weight32_t" in small._cache[False] and "weight32_t" not in big._cache[False]


@pytest.mark.parametrize("conv", [False, True])
def test_exact_fast_paths_on_hostile_weights_and_inputs(conv):
    """-0.0, tiny, infinite and NaN weights and inputs, frozen or trained parameters, with and without
    autograd: the cached quantization and the one-node straight-through give the formula's values."""
    hostile = [-0.0, float("inf"), float("nan"), -1e-9]
    for seed in range(12):
        g = torch.Generator().manual_seed(seed)
        layer = ExactConv2d(2, 3, 3, padding=1) if conv else ExactLinear(9, 4)
        with torch.no_grad():
            layer.weight.uniform_(-0.3, 0.3, generator=g)
            layer.weight.view(-1)[::3] *= 1e-5
            layer.weight.view(-1)[0] = hostile[seed % 4]
            layer.bias.uniform_(-1e-5, 1e-5, generator=g)  # rounds to +-0
        layer.requires_grad_(seed % 5 != 0)
        shape = (3, 2, 4, 4) if conv else (3, 9)
        for spike_input in (False, True):
            layer.spike_input = spike_input
            if spike_input:
                x = (torch.rand(shape, generator=g) < 0.3).float()
            else:
                x = torch.randn(shape, generator=g) * 10
                x.view(-1)[0] = hostile[seed % 4]
            for grad in (False, True):
                xi = x.clone().requires_grad_(grad and not spike_input)
                with torch.set_grad_enabled(grad):
                    assert_bitwise_equal(layer(xi), exact_formula(layer, xi),
                                         f"seed {seed} spikes {spike_input} grad {grad}")


def test_exact_layers_see_every_change_of_their_weights():
    layer = ExactLinear(6, 3)
    x = torch.rand(2, 6)
    with torch.no_grad():
        layer(x)
        layer.weight.data.mul_(0.5)  # not seen by the version counter: the values are compared
        assert_bitwise_equal(layer(x), exact_formula(layer, x), ".data write")
        layer.load_state_dict({"weight": torch.ones(3, 6), "bias": torch.zeros(3)})
        assert_bitwise_equal(layer(x), exact_formula(layer, x), "load_state_dict")
        layer.weight = nn.Parameter(torch.full((3, 6), 0.25))
        assert_bitwise_equal(layer(x), exact_formula(layer, x), "new parameter")
    layer(x).sum().backward()  # a cached graph: copying and pickling the layer still work
    copy.deepcopy(layer)
    torch.save(layer, io.BytesIO())


def test_spike_inputs_are_marked_after_spiking_layers_only():
    layers = [ExactLinear(4, 6), LIFLayer(6), nn.Flatten(), ExactLinear(6, 5), LIFLayer(5), nn.Dropout(0.1),
              ExactLinear(5, 4), LeakyIntegratorLayer(4), ExactLinear(4, 2)]
    net = SpikingSequential(*layers)
    assert [layer.spike_input for layer in layers if isinstance(layer, ExactLinear)] == [False, True, False, False]
    convs = [ExactConv2d(1, 2, 3), ExactConv2d(2, 2, 1)]
    SpikingSequential(convs[0], LIFLayer((2, 4, 4)), nn.MaxPool2d(2), convs[1])
    assert [c.spike_input for c in convs] == [False, True]
    assert "spike_input=True" in repr(net)


def plain_copy(net):
    """``net`` with its exact layers computed by the formula (the autograd graph of straight_through)."""
    twin = copy.deepcopy(net)
    for i, layer in enumerate(twin.layers):
        inner = getattr(layer, "module", layer)
        if isinstance(inner, (ExactLinear, ExactConv2d)):
            twin.layers[i] = Stateless(Formula(inner))
    return twin


@pytest.mark.parametrize("conv", [False, True])
def test_exact_network_training_equals_the_formula_bit_for_bit(conv):
    """Cached weights, spike inputs and the one-node straight-through change no gradient bit: three Adam
    steps (outputs, every gradient, every parameter) equal the plain autograd formula's."""
    torch.manual_seed(4)
    if conv:
        net = SpikingSequential(ExactConv2d(1, 3, 3, padding=1), LIFLayer((3, 6, 6)), nn.MaxPool2d(2),
                                ExactConv2d(3, 4, 3), SynapticLIFLayer((4, 1, 1)), nn.Flatten(), ExactLinear(4, 3),
                                LeakyIntegratorLayer(3))
        x = torch.rand(8, 5, 1, 6, 6) * 2
    else:
        net = SpikingSequential(ExactLinear(16, 24), LIFLayer(24), ExactLinear(24, 12), LIFLayer(12, reset="subtract"),
                                ExactLinear(12, 3), LeakyIntegratorLayer(3))
        x = torch.rand(8, 5, 16) * 2
    x[0, 0, ..., :3] = torch.tensor([float("nan"), float("inf"), -0.0])
    labels = torch.tensor([0, 1, 2, 0, 1])
    nets = {"fast": net, "formula": plain_copy(net)}
    optimisers = {k: torch.optim.Adam(n.parameters(), lr=0.05) for k, n in nets.items()}
    for step in range(3):
        seen = {}
        for name, n in nets.items():
            optimisers[name].zero_grad()
            out, _ = n.forward_sequence(x, n.initial_state(5, torch.float32))
            torch.nn.functional.cross_entropy(torch.nan_to_num(out.mean(0)), labels).backward()
            seen[name] = [out, *(p.grad for p in n.parameters())]
            optimisers[name].step()
        for i, (a, b) in enumerate(zip(seen["fast"], seen["formula"], strict=True)):
            assert_bitwise_equal(a, b, f"step {step} tensor {i}")
    for a, b in zip(nets["fast"].parameters(), nets["formula"].parameters(), strict=True):
        assert_bitwise_equal(a, b, "parameters after training")


def test_scan_sequence_graph_zero_steps_for_an_output_like_no_state(tmp_path):
    """The sequence graph's ``If (time == 0)``: the empty output of a network ending in a stateless layer
    gets its shape from one step of the same Scan on zeros; states come back unchanged."""
    import onnxruntime as ort

    from lif_export.export import export_network

    torch.manual_seed(1)
    net = SpikingSequential(ExactLinear(5, 7), LIFLayer(7), ExactLinear(7, 3))
    export_network(net, (5,), tmp_path, formats=["onnx"])
    session = ort.InferenceSession(str(tmp_path / "network_sequence.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    state = {"state.1.v": np.full((2, 7), 0.25, np.float32)}
    for steps in (0, 4):
        x = np.random.default_rng(steps).normal(0.5, 1.0, (steps, 2, 5)).astype(np.float32)
        got = dict(zip(names, session.run(None, {"x": x, **state}), strict=True))
        with torch.no_grad():
            out, final, traces = net.forward_trace(torch.from_numpy(x), [torch.from_numpy(state["state.1.v"])])
        assert_bitwise_equal(got["out"], out, f"T={steps} out")
        assert got["out"].shape == (steps, 2, 3)
        assert_bitwise_equal(got["state.1.v_next"], final[0], f"T={steps} state")
        assert_bitwise_equal(got["state.1.v_trace"], traces[0], f"T={steps} trace")
