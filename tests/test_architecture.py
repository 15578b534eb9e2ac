"""The architecture holds: layers never import the exporter, every format covers every layer type,
exports never touch the caller's network, and the layer API is one consistent shape."""

import ast
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from lif_export import LIFCell, LIFSequence
from lif_export.export import export_network
from lif_export.export.formats import FORMATS
from lif_export.export.formats import c as c_format
from lif_export.export.formats import onnx as onnx_format
from lif_export.network import (
    AdaptiveLIFLayer,
    ExactConv2d,
    ExactLinear,
    LeakyIntegratorLayer,
    LIFLayer,
    RecurrentLIFLayer,
    SpikingSequential,
    SynapticLIFLayer,
)

PACKAGE = Path(__file__).resolve().parents[1] / "lif_export"
LOWER = [*sorted((PACKAGE / "network").glob("*.py")), PACKAGE / "functional.py", PACKAGE / "modules.py",
         PACKAGE / "parameters.py", PACKAGE / "surrogate.py", PACKAGE / "validation.py"]
LAYER_TYPES = [LIFLayer, SynapticLIFLayer, AdaptiveLIFLayer, RecurrentLIFLayer, LeakyIntegratorLayer, ExactLinear,
               ExactConv2d, LIFCell]


def imported_modules(path: Path) -> list[str]:
    """Every module a file imports, anywhere in it (functions included), relative ones resolved to dots."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return names


@pytest.mark.parametrize("path", LOWER, ids=lambda p: p.name)
def test_lower_layers_never_import_the_exporter(path):
    upward = [m for m in imported_modules(path) if m.lstrip(".").split(".")[0] in ("export", "backends", "conformance")
              or m.startswith("lif_export.export")]
    assert not upward, f"{path.relative_to(PACKAGE.parent)} imports {upward}"


@pytest.mark.parametrize("registry", [onnx_format.EMITTERS, c_format.EMITTERS], ids=["onnx", "c"])
def test_every_layer_type_has_an_emitter_in_every_layer_by_layer_format(registry):
    for layer_type in LAYER_TYPES:
        assert registry.emitter_for(layer_type.__new__(layer_type)) is not None
    with pytest.raises(TypeError, match=f"cannot export Linear to {registry.target}: only"):
        registry.emitter_for(nn.Linear(2, 2))


def test_formats_are_plugins_with_one_entry_point():
    assert {"onnx", "torchscript"} <= set(FORMATS)
    assert all(callable(artifacts) for artifacts in FORMATS.values())


def test_export_network_leaves_the_callers_network_untouched(tmp_path):
    torch.manual_seed(0)
    net = SpikingSequential(ExactLinear(3, 4), LIFLayer(4, learn_beta=True), ExactLinear(4, 2),
                            LeakyIntegratorLayer(2))
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    export_network(net, (3,), tmp_path, dtype="float64", formats=["onnx"])
    assert net.training
    assert all(m.training for m in net.modules())
    after = net.state_dict()
    assert all(after[k].dtype == torch.float32 and torch.equal(after[k], v) for k, v in before.items())
    assert isinstance(net.layers[1].beta, nn.Parameter)


def test_layers_take_keyword_arguments_after_their_size():
    with pytest.raises(TypeError):
        LIFLayer(3, 0.5)  # type: ignore[misc]
    layer = LIFLayer(3, beta=0.5, threshold=0.75)
    cell = LIFCell(beta=0.5, threshold=0.75)
    assert float(layer.beta) == float(cell.beta) == 0.5 and float(layer.threshold) == float(cell.threshold) == 0.75


def test_positional_cell_arguments_are_deprecated_but_keep_their_old_meaning():
    with pytest.warns(DeprecationWarning, match="positional arguments to LIFCell are deprecated"):
        cell = LIFCell(0.5, 0.75)
    assert float(cell.threshold) == 0.5 and float(cell.beta) == 0.75


def test_surrogate_alpha_is_a_deprecated_alias_of_surrogate_slope():
    with pytest.warns(DeprecationWarning, match="surrogate_alpha is deprecated"):
        seq = LIFSequence(surrogate="arctan", surrogate_alpha=3.0)
    assert seq.surrogate_slope == 3.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert SynapticLIFLayer(2, alpha=0.5, surrogate_slope=3.0).surrogate_slope == 3.0


def test_network_layers_learn_beta_and_threshold_within_their_ranges():
    layer = LIFLayer(4, beta=0.9, threshold=1.0, learn_beta=True, learn_threshold=True, dtype=torch.float64)
    assert isinstance(layer.beta, nn.Parameter) and isinstance(layer.threshold, nn.Parameter)
    x = torch.rand(6, 2, 4, dtype=torch.float64) * 2
    state = layer.initial_state(2, torch.float64)
    total = torch.zeros(())
    for x_t in x:
        spike, state = layer.step(x_t, state)
        total = total + spike.sum() + state[0].sum()
    total.backward()
    assert layer.beta.grad is not None and layer.threshold.grad is not None
    with torch.no_grad():
        layer.beta.fill_(1.5)  # drifted out of range: forward clamps it
        layer.threshold.fill_(-1.0)
    with torch.no_grad():
        beta, threshold, _ = layer.neuron_parameters()
    assert float(beta.max()) == 1.0 and float(threshold.min()) == layer.min_threshold
    torch.jit.script(layer)


@pytest.mark.parametrize("name, value, message", [
    ("beta", 2.0, r"beta must satisfy 0 <= beta <= 1, got 2\.0"),
    ("threshold", -1.0, r"threshold must be finite and > 0, got -1\.0"),
    ("v_reset", float("nan"), r"v_reset must be finite"),
])
def test_load_state_dict_validates_fixed_parameters(name, value, message):
    for module in (LIFCell(), LIFLayer(3)):
        state = module.state_dict()
        state[name] = torch.tensor(value)
        with pytest.raises(ValueError, match=message):
            module.load_state_dict(state)


def test_integer_parameter_dtypes_are_refused():
    with pytest.raises(TypeError, match=r"dtype must be a real floating-point torch dtype.*torch\.int32"):
        LIFCell(dtype=torch.int32)
    with pytest.raises(TypeError, match=r"dtype must be a real floating-point"):
        LIFLayer(3, dtype=torch.int64)
