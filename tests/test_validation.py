"""Bad parameters and inputs raise errors that name the parameter, value and allowed range."""

import pytest
import torch

from lif_export import LIFCell, LIFNeuron, LIFSequence, lif_step


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (dict(beta=1.5), ValueError, r"beta must satisfy 0 <= beta <= 1, got .*1\.5"),
        (dict(beta=-0.1), ValueError, r"beta must satisfy 0 <= beta <= 1"),
        (dict(beta=float("nan")), ValueError, r"beta .* nan"),
        (dict(beta=torch.tensor([0.5, 2.0])), ValueError, r"beta .*2\.0"),
        (dict(threshold=0.0), ValueError, r"threshold must be finite and > 0, got .*0\.0"),
        (dict(threshold=float("inf")), ValueError, r"threshold must be finite and > 0, got .*inf"),
        (dict(v_reset=float("nan")), ValueError, r"v_reset must be finite, got .*nan"),
        (dict(reset="hard"), ValueError, r"reset must be one of \['zero', 'subtract', 'none'\], got 'hard'"),
        (dict(surrogate="relu"), ValueError, r"surrogate must be one of .*fast_sigmoid.*got 'relu'"),
        (dict(surrogate_slope=-1.0), ValueError, r"surrogate_slope must be finite and > 0, got -1\.0"),
        (dict(beta="0.9"), TypeError, r"beta must be a float or a tensor"),
        (dict(threshold=True), TypeError, r"threshold must be a real number"),
        (dict(beta=torch.ones(3), threshold=torch.ones(4)), ValueError, r"broadcast together.*beta=\(3,\)"),
    ],
)
@pytest.mark.parametrize("module", [LIFCell, LIFSequence, LIFNeuron])
def test_bad_parameters(module, kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        module(**kwargs)


@pytest.mark.parametrize("scripted", [False, True])
def test_bad_inputs(scripted):
    cell = LIFCell(beta=torch.full((4,), 0.5))
    if scripted:
        cell = torch.jit.script(cell)
    err = (torch.jit.Error,) if scripted else ()
    with pytest.raises((TypeError, *err), match="x \\(input current\\) must be a floating-point tensor, got dtype"):
        cell(torch.ones(4, dtype=torch.int64), torch.zeros(4, dtype=torch.int64))
    with pytest.raises((TypeError, *err), match="v \\(membrane potential\\) must have the dtype of x"):
        cell(torch.ones(4), torch.zeros(4, dtype=torch.float64))
    with pytest.raises((ValueError, *err), match=r"v \(membrane potential\) of shape \[3\] cannot broadcast"):
        cell(torch.ones(4), torch.zeros(3))
    with pytest.raises((ValueError, *err), match=r"beta of shape \[4\] cannot broadcast to the input shape \[2, 5\]"):
        cell(torch.ones(2, 5), torch.zeros(2, 5))


def test_sequence_needs_time_dimension():
    with pytest.raises(ValueError, match="leading time dimension"):
        LIFSequence()(torch.tensor(1.0))


def test_functional_rejects_unknown_reset():
    with pytest.raises(ValueError, match="reset must be one of"):
        lif_step(torch.ones(2), torch.zeros(2), torch.tensor(0.9), torch.tensor(1.0), torch.tensor(0.0), "bogus")
