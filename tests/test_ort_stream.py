"""``OnnxSequenceStream``: a sequence graph driven chunk by chunk, against eager PyTorch on the whole sequence."""

import numpy as np
import pytest

from lif_export.backends import EagerSequence
from lif_export.backends.ort_stream import OnnxSequenceStream
from lif_export.errors import InvalidTypeError, InvalidValueError
from lif_export.export import NeuronSpec
from tests.conftest import assert_bitwise_equal


def test_chunks_write_into_slices_and_carry_the_state(exported):
    x = np.random.default_rng(3).normal(0.4, 0.6, size=(40, 2, 8)).astype(np.float32)
    v0 = np.full((2, 8), 0.25, np.float32)
    want = EagerSequence(NeuronSpec()).run(x, {"v": v0})
    stream = OnnxSequenceStream(exported, (2, 8))
    stream.reset(v=v0)
    spikes, v_trace = np.full_like(x, np.nan), np.full_like(x, np.nan)
    for start, end in ((0, 1), (1, 1), (1, 9), (9, 40)):  # one step, an empty chunk, uneven lengths
        chunk = spikes[start:end]
        assert stream.run(x[start:end], out=chunk, traces={"v_trace": v_trace[start:end]}) is chunk
        expected_v = want["v_trace"][end - 1] if end else v0
        assert_bitwise_equal(stream.state("v"), expected_v, f"state after chunk [{start}, {end})")
    assert_bitwise_equal(spikes, want["spike"], "spikes")
    assert_bitwise_equal(v_trace, want["v_trace"], "membrane trace")
    fresh = OnnxSequenceStream(exported, (2, 8))
    assert_bitwise_equal(fresh.run(x[:5]), EagerSequence(NeuronSpec()).run(x[:5], {"v": np.zeros((2, 8), np.float32)})
                         ["spike"], "a new output array, the manifest's initial state")


def test_bad_arguments_are_refused_by_name(exported):
    stream = OnnxSequenceStream(exported, (1, 8))
    x = np.zeros((3, 1, 8), np.float32)
    with pytest.raises(InvalidValueError, match="artifact must be an ONNX sequence graph"):
        OnnxSequenceStream(exported, (1, 8), artifact="onnx_step")
    with pytest.raises(InvalidValueError, match=r"shape must fit x's"):
        OnnxSequenceStream(exported, (1, 8, 2))
    with pytest.raises(InvalidTypeError, match="x must be a numpy array of dtype float32"):
        stream.run(x.astype(np.float64))
    with pytest.raises(InvalidValueError, match=r"x must have shape \['time', 1, 8\], got \[3, 2, 8\]"):
        stream.run(np.zeros((3, 2, 8), np.float32))
    with pytest.raises(InvalidValueError, match=r"out must have shape \[3, 1, 8\]"):
        stream.run(x, out=np.zeros((2, 1, 8), np.float32))
    with pytest.raises(InvalidValueError, match="out must be a writeable C-contiguous array"):
        stream.run(x, out=np.zeros((1, 8, 3), np.float32).transpose(2, 0, 1))
    with pytest.raises(InvalidValueError, match=r"traces names must be among \['v_trace'\], got \['v'\]"):
        stream.run(x, traces={"v": np.zeros_like(x)})
    with pytest.raises(InvalidValueError, match="name must be among"):
        stream.state("u")
    assert not stream.state("v").any(), "a refused call leaves the state alone"
