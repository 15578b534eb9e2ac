"""The fast paths of issue 15: a reused output for ``LIFSequence`` (eager and TorchScript), the
memory the hand-written backward keeps, and networks trained through it, all with the bits of the
reference paths."""

import pytest
import torch
from torch import nn

from lif_export import LIFSequence, lif_sequence
from lif_export.network import ExactLinear, LeakyIntegratorLayer, LIFLayer, SpikingSequential, SynapticLIFLayer
from tests.conftest import assert_bitwise_equal


@pytest.fixture(scope="module")
def scripted_sequence():
    return torch.jit.script(LIFSequence(beta=0.8, v_reset=-0.25))


@pytest.mark.parametrize("scripted", [False, True])
def test_sequence_writes_into_a_reused_out(scripted, scripted_sequence):
    module = scripted_sequence if scripted else LIFSequence(beta=0.8, v_reset=-0.25)
    x = torch.randn(30, 3, 7) * 0.8 + 0.3
    x[4, 0, :3] = torch.tensor([float("nan"), float("inf"), -0.0])
    v0 = torch.randn(3, 7) * 0.5
    want, want_v, _ = lif_sequence(x, v0, torch.tensor(0.8), torch.tensor(1.0), torch.tensor(-0.25))
    out = torch.full_like(x, 7.0)
    with torch.no_grad():
        for _ in range(2):  # the second call overwrites the first's spikes in the same buffer
            spikes, v = module(x, v0, out)
            assert spikes.data_ptr() == out.data_ptr()
            assert_bitwise_equal(spikes, want, "spikes")
            assert_bitwise_equal(v, want_v, "v_T")
    error = torch.jit.Error if scripted else ValueError
    with torch.no_grad(), pytest.raises(error, match=r"out must have x's shape \[30, 3, 7\] and dtype float32"):
        module(x, v0, torch.empty(30, 3, 7, dtype=torch.float64))
    with pytest.raises(error, match="out is for runs without gradients"):
        module(x.clone().requires_grad_(True), v0, out)


def test_out_on_the_autograd_loop_dtypes():
    """float16 has no fast path: the reference loop's spikes are copied into ``out``."""
    x = (torch.rand(12, 5) * 0.7).half()
    out = torch.empty_like(x)
    with torch.no_grad():
        spikes, _ = LIFSequence(dtype=torch.float16)(x, None, out)
    assert spikes.data_ptr() == out.data_ptr()
    want, _, _ = lif_sequence(x, torch.zeros(5, dtype=torch.float16), torch.tensor(0.9), torch.tensor(1.0),
                              torch.tensor(0.0))
    assert torch.equal(spikes.view(torch.int16), want.view(torch.int16))


def _saved_bytes(run) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``run`` builds its graph."""
    storages: dict[int, int] = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run()
    return sum(storages.values())


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_backward_keeps_one_float_per_neuron_step(reset):
    """Issue 15, item 6: the hand-written backward keeps ``u`` (one float per neuron-step) besides the
    state and the parameters; the autograd loop keeps several."""
    seq = LIFSequence(learn_beta=True, learn_threshold=True, reset=reset)
    x = torch.rand(50, 4, 64, requires_grad=True)

    def fast():
        spikes, _ = seq(x)
        return spikes

    def autograd_loop():
        beta, threshold, v_reset = seq.neuron_parameters()
        return lif_sequence(x, torch.zeros(4, 64), beta, threshold, v_reset, reset)[0]

    neuron_steps = x.numel() * x.element_size()
    kept = _saved_bytes(fast)
    assert neuron_steps <= kept <= neuron_steps + 3 * 4 * 64 * 4, kept / neuron_steps
    assert _saved_bytes(autograd_loop) >= 2 * neuron_steps


def _graph_has(tensor: torch.Tensor, name: str) -> bool:
    seen, stack = set(), [tensor.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if name in type(node).__name__:
            return True
        stack.extend(next_node for next_node, _ in node.next_functions)
    return False


def _train_once(net: SpikingSequential, x: torch.Tensor, stepwise: bool):
    """Forward (``forward_sequence``, or ``step`` per time step), a loss on every output step and the
    final state, backward: the outputs, the final state and every gradient."""
    for p in net.parameters():
        p.grad = None
    xi = x.clone().requires_grad_(True)
    state = net.initial_state(x.shape[1], x.dtype)
    if stepwise:
        outs = []
        for x_t in xi.unbind(0):
            out, state = net.step(x_t, state)
            outs.append(out)
        out = torch.stack(outs)
    else:
        out, state = net.forward_sequence(xi, state)
    loss = nn.functional.cross_entropy(out.mean(0), torch.arange(x.shape[1]) % out.shape[-1])
    loss = loss + sum((s * 0.5).sum() for s in state)
    loss.backward()
    return out, [out.detach(), *(s.detach() for s in state), xi.grad, *(p.grad for p in net.parameters())]


NETWORKS = {
    "digits-like": lambda: SpikingSequential(
        ExactLinear(16, 24), LIFLayer(24), ExactLinear(24, 12), LIFLayer(12, reset="subtract", v_reset=0.0),
        ExactLinear(12, 8), SynapticLIFLayer(8, alpha=0.7), ExactLinear(8, 5), LeakyIntegratorLayer(5)),
    "learned beta": lambda: SpikingSequential(
        ExactLinear(16, 24), LIFLayer(24, beta=[0.5, 0.9, 1.0] * 8, learn_beta=True, v_reset=-0.25),
        ExactLinear(24, 6), LIFLayer(6, learn_beta=True, reset="none", surrogate="arctan"), nn.Linear(6, 5)),
    "fallbacks": lambda: SpikingSequential(  # a learned threshold, the next-step reset: autograd per step
        ExactLinear(16, 12), LIFLayer(12, learn_threshold=True), ExactLinear(12, 6),
        LIFLayer(6, reset_timing="next_step"), nn.Linear(6, 5)),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_network_training_through_bptt_equals_step_by_step_autograd(name, dtype):
    torch.manual_seed(0)
    net = NETWORKS[name]().to(dtype)
    x = (torch.rand(15, 6, 16) * 1.5).to(dtype)
    out, fast = _train_once(net, x, stepwise=False)
    assert _graph_has(out, "LIFSequenceFunction") == (name != "fallbacks")
    _, want = _train_once(net, x, stepwise=True)
    names = ["out", *net.state_names, "grad x", *(f"grad {n}" for n, _ in net.named_parameters())]
    for got, expected, field in zip(fast, want, names, strict=True):
        assert_bitwise_equal(got, expected, f"{name} {field}")


@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
def test_bptt_when_only_the_final_state_is_used(reset):
    """No gradient reaches the spikes (autograd passes ``None``): every row of the backward runs
    without the surrogate, and the gradients still equal autograd's."""
    seq = LIFSequence(learn_beta=True, learn_threshold=True, reset=reset, beta=[0.5, 0.9, 1.0] * 3)
    x = torch.randn(25, 2, 9) * 0.8 + 0.4
    weight = torch.randn(2, 9)

    def grads(fast: bool):
        for p in seq.parameters():
            p.grad = None
        xi = x.clone().requires_grad_(True)
        if fast:
            _, v = seq(xi)
        else:
            beta, threshold, v_reset = seq.neuron_parameters()
            _, v, _ = lif_sequence(xi, torch.zeros(2, 9), beta, threshold, v_reset, reset)
        (v * weight).sum().backward()
        return [xi.grad, *(p.grad for p in seq.parameters())]

    for got, want, name in zip(grads(True), grads(False), ["x", "beta", "threshold"], strict=True):
        if want is None:  # the threshold, when only the subtract reset gives it a gradient
            assert got is None and name == "threshold" and reset != "subtract"
        else:
            assert_bitwise_equal(got, want, f"grad {name}")


def test_a_large_new_output_comes_from_the_huge_page_allocator():
    """From 4 MB on the eager output is allocated by numpy (transparent huge pages): same bits."""
    from lif_export.fast.simulate import HUGE_PAGE_OUTPUT_BYTES

    x = torch.rand(4, 256, 1024) * 0.9
    assert x.numel() * x.element_size() >= HUGE_PAGE_OUTPUT_BYTES
    with torch.no_grad():
        spikes, v = LIFSequence()(x)
    want, want_v, _ = lif_sequence(x, torch.zeros(256, 1024), torch.tensor(0.9), torch.tensor(1.0), torch.tensor(0.0))
    assert spikes.is_contiguous() and spikes.dtype == torch.float32
    assert_bitwise_equal(spikes, want, "spikes")
    assert_bitwise_equal(v, want_v, "v_T")


def test_two_dropout_layers_keep_the_step_by_step_order():
    """Two dropout layers in training draw their masks step by step, so the layer-by-layer path is not
    taken and the random numbers (and so the bits) are those of the step-by-step loop."""
    net = SpikingSequential(ExactLinear(8, 12), nn.Dropout(0.3), LIFLayer(12), nn.Dropout(0.3), ExactLinear(12, 4))
    x = torch.rand(6, 3, 8) * 2
    torch.manual_seed(5)
    out, _ = _train_once(net, x, stepwise=False)
    assert not _graph_has(out, "LIFSequenceFunction")
    torch.manual_seed(5)
    _, want = _train_once(net, x, stepwise=True)
    torch.manual_seed(5)
    _, got = _train_once(net, x, stepwise=False)
    for a, b in zip(got, want, strict=True):
        assert_bitwise_equal(a, b)
