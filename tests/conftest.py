"""Shared fixtures and helpers for the test suite."""

import os

# Bounded thread pools: under load (CI, other jobs on the 2 cores) torch's and OpenMP's default pools
# oversubscribe the cores and the suite slows down many times over. Set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import torch
from hypothesis import settings

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

# CI runs the property tests on a fixed sequence of examples (a red CI must mean a real
# regression, not a new random draw); locally each run explores new examples.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def assert_bitwise_equal(actual, expected, what: str = "") -> None:
    """Equal bit for bit (NaN payloads and the sign of zero included)."""
    a = actual.detach().cpu().numpy() if isinstance(actual, torch.Tensor) else np.asarray(actual)
    e = expected.detach().cpu().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected)
    assert a.dtype == e.dtype, f"{what}: dtype {a.dtype} != {e.dtype}"
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    ia = a.view(np.uint32 if a.dtype == np.float32 else np.uint64)
    ie = e.view(np.uint32 if e.dtype == np.float32 else np.uint64)
    bad = np.argwhere(ia != ie)
    assert bad.size == 0, (
        f"{what}: {len(bad)} elements differ; first at {tuple(bad[0])}: "
        f"{a[tuple(bad[0])]!r} != {e[tuple(bad[0])]!r}"
    )


def exact_formula(layer, x: torch.Tensor) -> torch.Tensor:
    """``ExactLinear``'s / ``ExactConv2d``'s definition computed afresh, as TorchScript, ONNX and C compute it
    (the independent expectation for the eager fast paths): a spike input that needs no gradient is taken as
    it is (the scripted layer's ``_input``)."""
    from lif_export.network import ExactConv2d
    from lif_export.network.exact import straight_through

    q = x if layer.spike_input and not x.requires_grad else straight_through(x, layer.input_bound, layer.scale)
    weight, bias = layer.quantized()
    if isinstance(layer, ExactConv2d):
        return torch.nn.functional.conv2d(q.double(), weight.double(), bias.double(), stride=layer.stride,
                                          padding=layer.padding, dilation=layer.dilation).to(x.dtype)
    wide = torch.matmul(q.double(), weight.double().t())
    return (wide if bias is None else wide + bias.double()).to(x.dtype)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """The default neuron exported once per session (read-only for tests)."""
    from lif_export.export import export

    out = tmp_path_factory.mktemp("models")
    export(out_dir=out)
    return out
