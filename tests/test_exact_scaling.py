"""Per-layer power-of-two weight grids (``weight_exponent``) and strided/dilated ``ExactConv2d``: ordinary
layers with large weights convert with ``to_exact`` and run bit-identically in eager PyTorch, TorchScript,
onnxruntime and the C library; a strided, dilated convolution equals an independent integer sum; layers
within the fixed bounds keep exponent 0 and today's arithmetic."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from lif_export.conformance.verify import verify_dir
from lif_export.export.formats import ExportOptions
from lif_export.export.model import NetworkModel
from lif_export.export.pipeline import export_model
from lif_export.fast.ccompile import compiler
from lif_export.network import (
    ExactConv2d,
    ExactLinear,
    LeakyIntegratorLayer,
    LIFLayer,
    SpikingSequential,
    to_exact,
)
from lif_export.network.convert import Rounding
from tests.conftest import assert_bitwise_equal

#: verify's input cases for the exported networks (a few, to stay fast): ordinary, special and huge values.
CASES = ["random_unit", "random_large", "special_values", "huge", "golden:special_values"]


def ordinary_network() -> SpikingSequential:
    """Ordinary layers (strided and dilated convolutions included) with weights and biases times 1000."""
    torch.manual_seed(1)
    net = SpikingSequential(
        nn.Conv2d(1, 3, 3, padding=1, stride=2, dilation=2), LIFLayer((3, 5, 5)),
        nn.Conv2d(3, 2, 2, stride=(1, 2), dilation=(2, 1)), LIFLayer((2, 3, 2), threshold=50.0), nn.Flatten(),
        nn.Linear(12, 6), LIFLayer(6, threshold=100.0), nn.Linear(6, 3), LeakyIntegratorLayer(3))
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                module.weight.mul_(1000.0)
                module.bias.mul_(1000.0)
    return net


@pytest.fixture(scope="module")
def converted() -> tuple[SpikingSequential, SpikingSequential, list[Rounding], list[str]]:
    net = ordinary_network()
    roundings: list[Rounding] = []
    lines: list[str] = []
    return net, to_exact(net, report=lines.append, roundings=roundings).eval(), roundings, lines


@pytest.fixture(scope="module")
def exported(converted, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scaled") / "net"
    export_model(NetworkModel(converted[1], (1, 12, 12), "float32"), folder, ["c", "torchscript", "onnx"],
                 ExportOptions(c_name="scaled"))
    return folder


def exact_modules(net: nn.Module) -> list[ExactLinear | ExactConv2d]:
    return [m for m in net.modules() if isinstance(m, (ExactLinear, ExactConv2d))]


def test_weights_times_1000_get_a_per_layer_exponent(converted):
    net, exact, roundings, lines = converted
    originals = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for original, layer, rounding, line in zip(originals, exact_modules(exact), roundings, lines, strict=True):
        largest = max(float(original.weight.detach().abs().max()), float(original.bias.detach().abs().max()))
        k = math.ceil(math.log2(largest / 16))  # the smallest power of two whose bound holds the layer
        assert largest > 16 and layer.weight_exponent == rounding.exponent == k
        assert layer.weight_bound == 16 * 2.0**k and layer.weight_scale == 2.0 ** (12 - k)
        step = 2.0 ** (k - 12)
        for ours, theirs in ((layer.weight, original.weight), (layer.bias, original.bias)):
            want = torch.round(theirs.detach().double() / step) * step  # nothing clipped
            assert torch.equal(ours.detach().double(), want)
        assert 0 < rounding.max_error <= step / 2 and f"grid 2^{k - 12} (scaled by 2^{k})" in line
    conv = exact_modules(exact)[0]
    assert (conv.stride, conv.dilation, conv.padding) == ((2, 2), (2, 2), 1)


def test_scaled_network_is_bit_identical_in_eager_torchscript_onnxruntime_and_c(converted, exported):
    exact = converted[1]
    x = torch.randn(6, 3, 1, 12, 12) * 300  # beyond the input clamp too
    state = exact.initial_state(3, torch.float32)
    with torch.no_grad():
        out, final, traces = exact.forward_trace(x, state)
        s_out, s_final, s_traces = torch.jit.script(exact).forward_trace(x, state)
    for a, b in zip([s_out, *s_final, *s_traces], [out, *final, *traces], strict=True):
        assert_bitwise_equal(a, b, "TorchScript")
    assert out.abs().sum() > 0 and all((t == 0).any() for t in traces[:-1])  # every layer fired (reset to 0)
    session = ort.InferenceSession(str(exported / "network_sequence.onnx"))
    feed = {"x": x.numpy(), **{name: s.numpy() for name, s in zip(exact.state_names, state, strict=True)}}
    assert_bitwise_equal(session.run(None, feed)[0], out.numpy(), "onnxruntime")
    report = verify_dir(exported, families=["c", "onnxruntime", "torchscript"], cases=CASES, progress=False)
    assert report.ok, [(c.backend, c.case, c.first_difference) for c in report.mismatches][:3] + report.errors
    families = {c.backend.split("/")[0] for c in report.comparisons}
    assert {"onnxruntime", "torchscript"} <= families
    if compiler() is not None:
        assert "c" in families
    source = (exported / "scaled.c").read_text()
    k = exact_modules(exact)[0].weight_exponent
    assert f"* 0x1p{k - 24}f" in source  # the first conv's real-valued input: units of 2**(k-24)


def integer_conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, k: int, stride: tuple[int, int],
                 dilation: tuple[int, int], padding: int) -> np.ndarray:
    """ExactConv2d by hand: inputs and weights as integers (units 2**-12 and 2**(k-12)), an int64 sum per
    output over the dilated, strided windows, then the exact value ``S * 2**(k-24)`` rounded once to float32."""
    xq = np.rint(np.clip(x.astype(np.float64), -256, 256) * 4096).astype(np.int64)
    wq = np.rint(np.ldexp(weight.astype(np.float64), 12 - k)).astype(np.int64)
    bq = np.rint(np.ldexp(bias.astype(np.float64), 12 - k)).astype(np.int64)
    xq = np.pad(xq, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    (sh, sw), (dh, dw), size = stride, dilation, weight.shape[-1]
    out_h = (xq.shape[2] - dh * (size - 1) - 1) // sh + 1
    out_w = (xq.shape[3] - dw * (size - 1) - 1) // sw + 1
    total = np.zeros((x.shape[0], weight.shape[0], out_h, out_w), np.int64) + (bq * 4096)[None, :, None, None]
    for ky in range(size):
        for kx in range(size):
            window = xq[:, :, ky * dh:ky * dh + (out_h - 1) * sh + 1:sh, kx * dw:kx * dw + (out_w - 1) * sw + 1:sw]
            total += np.einsum("bchw,oc->bohw", window, wq[:, :, ky, kx])
    assert np.abs(total).max() < 2**53
    return np.ldexp(total.astype(np.float64), k - 24).astype(np.float32)


def test_strided_dilated_conv_equals_an_independent_integer_sum(tmp_path):
    k, stride, dilation, padding = 3, (2, 1), (1, 3), 2
    conv = ExactConv2d(2, 3, 3, padding=padding, stride=stride, dilation=dilation, weight_exponent=k)
    with torch.no_grad():
        conv.weight.uniform_(-120.0, 120.0)  # within 16 * 2**3
        conv.bias.uniform_(-100.0, 100.0)
    x = torch.randn(4, 2, 9, 11) * 200
    x[0, 0, 0, :4] = torch.tensor([0.5, 1.5, -2.5, 300.0]) / 4096  # ties to even; beyond the clamp
    with torch.no_grad():
        weight, bias = conv.quantized()
        eager = conv(x)
        scripted = torch.jit.script(conv)(x)
    want = integer_conv(x.numpy(), weight.numpy(), bias.numpy(), k, stride, dilation, padding)
    assert eager.shape == torch.nn.functional.conv2d(x, weight, stride=stride, padding=padding,
                                                     dilation=dilation).shape == (4, 3, *conv.output_size(9, 11))
    assert_bitwise_equal(eager, want, "eager")
    assert_bitwise_equal(scripted, want, "TorchScript")
    with torch.no_grad():  # the same exact sum as float64 conv2d of the grid values
        wide = torch.nn.functional.conv2d(torch.from_numpy(np.rint(np.clip(x.numpy().astype(np.float64), -256, 256)
                                                                    * 4096) / 4096), weight.double(), bias.double(),
                                          stride=stride, padding=padding, dilation=dilation)
    assert_bitwise_equal(wide.float(), want, "float64 conv2d")
    net = SpikingSequential(conv, LIFLayer((3, 6, 9), threshold=200.0))
    export_model(NetworkModel(net, (2, 9, 11), "float32"), tmp_path, ["c", "torchscript", "onnx"],
                 ExportOptions(c_name="strided"))
    session = ort.InferenceSession(str(tmp_path / "network_step.onnx"))
    out = session.run(None, {"x": x.numpy(), "state.1.v": np.zeros((4, 3, 6, 9), np.float32)})
    assert_bitwise_equal(out[0], (want > 200.0).astype(np.float32), "onnxruntime spikes")
    assert_bitwise_equal(out[1], np.where(want > 200.0, 0.0, want).astype(np.float32), "onnxruntime v")
    report = verify_dir(tmp_path, families=["c", "onnxruntime"], cases=["random_large", "special_values"],
                        progress=False)
    assert report.ok, [(c.backend, c.case, c.first_difference) for c in report.mismatches][:3] + report.errors


def test_exponent_zero_layers_are_unchanged():
    layer = ExactLinear(5, 4)
    assert (layer.weight_exponent, layer.weight_scale, layer.weight_bound) == (0, 4096.0, 16.0)
    with torch.no_grad():
        layer.weight[0, 0] = 20.0  # still clamped to the fixed bound: exponent 0 is today's grid
        w, b = layer.quantized()
    assert torch.equal(w, torch.round(torch.clamp(layer.weight, -16, 16) * 4096) / 4096) and w[0, 0] == 16.0
    x = torch.randn(3, 5) * 4
    with torch.no_grad():
        want = (torch.round(x.double() * 4096) / 4096 @ w.double().t() + b.double()).float()
        assert_bitwise_equal(layer(x), want, "exponent 0")
    ordinary = nn.Linear(5, 4)
    rounding: list[Rounding] = []
    lines: list[str] = []
    exact = to_exact(ordinary, report=lines.append, roundings=rounding)
    assert exact.weight_exponent == 0 and torch.equal(exact.weight, torch.round(ordinary.weight * 4096) / 4096)
    r = rounding[0]
    assert lines == [f"<network>: Linear(5, 4) -> exact, grid 2^-12: max |error| {r.max_error:.3g}, "
                     f"rms {r.rms_error:.3g} (max |w| {r.max_abs:.3g})"]
    conv = to_exact(nn.Conv2d(2, 2, 3, padding=1), report=None)
    assert (conv.weight_exponent, conv.stride, conv.dilation, conv.padding) == (0, (1, 1), (1, 1), 1)
    saved = {name: value for name, value in layer.__dict__.items() if name not in ("weight_exponent", "weight_scale")}
    old = ExactLinear.__new__(ExactLinear)
    old.__setstate__(saved)  # a layer pickled before the exponent existed computes on today's grid
    assert (old.weight_exponent, old.weight_scale) == (0, 4096.0)


def test_rounding_error_scales_with_the_grid():
    base = nn.Linear(7, 5)
    with torch.no_grad():
        base.weight.uniform_(-12.0, 12.0)
        base.weight[0, 0] = 15.0  # largest in (8, 16]: exponent 0; times 1024: exponent 10
    scaled = nn.Linear(7, 5)
    with torch.no_grad():
        scaled.weight.copy_(base.weight * 1024)
        scaled.bias.copy_(base.bias * 1024)
    for grid_bits in (12, 4):
        roundings: list[Rounding] = []
        lines: list[str] = []
        for layer in (base, scaled):
            to_exact(layer, grid_bits=grid_bits, report=lines.append, roundings=roundings)
        small, large = roundings
        assert (small.exponent, large.exponent) == (0, 10)
        # rounding commutes with a power-of-two scale: the errors are exactly 1024 times as large
        assert large.max_error == 1024 * small.max_error and large.rms_error == 1024 * small.rms_error
        assert 0 < large.max_error <= 2.0 ** (10 - grid_bits - 1)
        assert f"grid 2^{-grid_bits}:" in lines[0] and f"grid 2^{10 - grid_bits} (scaled by 2^10):" in lines[1]


def test_refusals_name_the_layer_and_the_parameter():
    huge = nn.Linear(2, 1, dtype=torch.float64)
    with torch.no_grad():
        huge.weight.fill_(1e40)  # would need weight_exponent 129 > 123
    with pytest.raises(ValueError, match=r"layers\.0\.module: Linear\(2, 1\)\.weight has a value of magnitude "
                                         r"1e\+40.*weight_exponent <= 123"):
        to_exact(SpikingSequential(huge), report=None)
    bad_bias = nn.Linear(2, 1)
    with torch.no_grad():
        bad_bias.bias.fill_(float("inf"))
    with pytest.raises(ValueError, match=r"<network>: Linear\(2, 1\)\.bias has a non-finite value"):
        to_exact(bad_bias, report=None)
    with pytest.raises(ValueError, match=r"1: cannot make Conv2d\(2, 2, kernel_size=3, stride=\(2, 2\)\) exact: "
                                         r"padding=\(1, 0\)"):
        to_exact(nn.Sequential(nn.Identity(), nn.Conv2d(2, 2, 3, stride=2, padding=(1, 0))), report=None)
    for bad in (124, -103, 1.0):
        with pytest.raises(ValueError, match=r"weight_exponent must be an integer from -102 to 123"):
            ExactLinear(2, 2, weight_exponent=bad)
    with pytest.raises(ValueError, match=r"stride must be an integer >= 1 or a pair of them, got 0"):
        ExactConv2d(1, 1, 3, stride=0)


def test_spike_fast_path_and_cached_weights_with_an_exponent():
    """After a spiking layer a float32 ExactLinear multiplies in float32 when its sums are exact there
    (multiples of 2**(k-12) below 2**(k+12)); the result equals the scripted formula's."""
    torch.manual_seed(3)
    first, second = ExactLinear(4, 6, weight_exponent=6), ExactLinear(6, 3, weight_exponent=6)
    with torch.no_grad():
        first.weight.mul_(2000.0)
        second.weight.uniform_(-1000.0, 1000.0)  # |sum| <= 6000 + |bias| < 2**18: exact in float32
    net = SpikingSequential(first, LIFLayer(6, threshold=64.0), second, LeakyIntegratorLayer(3)).eval()
    x = torch.randn(8, 5, 4)
    state = net.initial_state(5, torch.float32)
    with torch.no_grad():
        out, _, traces = net.forward_trace(x, state)
        s_out, _, s_traces = torch.jit.script(net).forward_trace(x, state)
    assert (traces[0] == 0).any() and second.spike_input and "weight32_t" in second._cache[False]
    for fan_in, in_float32 in ((255, True), (256, False)):  # worst sum 1024 * fan_in against 2**(6+12)
        layer = ExactLinear(fan_in, 1, bias=False, weight_exponent=6)
        with torch.no_grad():
            layer.weight.fill_(1024.0)
            layer(torch.ones(1, fan_in))
        assert ("weight32_t" in layer._cache[False]) == in_float32
    for a, b in zip([s_out, *s_traces], [out, *traces], strict=True):
        assert_bitwise_equal(a, b, "eager fast path vs TorchScript")


def test_nir_round_trip_keeps_stride_dilation_and_scaled_weights(converted):
    pytest.importorskip("nir", reason="the nir package is not installed (pip install 'lif_export[convert]')")
    from lif_export.nir import from_nir, to_nir

    exact = converted[1]
    back = from_nir(to_nir(exact, dt=1e-3, feature_shape=(1, 12, 12)), report=None)
    for ours, theirs in zip(exact_modules(exact), exact_modules(back), strict=True):
        assert ours.weight_exponent == theirs.weight_exponent and torch.equal(ours.weight, theirs.weight)
        assert getattr(ours, "stride", None) == getattr(theirs, "stride", None)
        assert getattr(ours, "dilation", None) == getattr(theirs, "dilation", None)
    x = torch.randn(5, 2, 1, 12, 12) * 300
    with torch.no_grad():
        want = exact.forward_trace(x, exact.initial_state(2, torch.float32))
        got = back.forward_trace(x, back.initial_state(2, torch.float32))
    for a, b in zip([got[0], *got[2]], [want[0], *want[2]], strict=True):
        assert_bitwise_equal(a, b, "NIR round trip")
