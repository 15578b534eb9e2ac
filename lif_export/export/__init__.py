"""Export LIF neurons and spiking networks: TorchScript and ONNX step and sequence graphs with
explicit state, golden vectors and a manifest, through one pipeline (:mod:`.pipeline`).

* :func:`export` - a single neuron: ``lif_step.onnx``, ``lif_sequence.onnx``, ``lif_step.pt``,
  ``lif_sequence.pt``, ``lif_neuron.pt``, all ``(x, v) -> (spike, v_next)``;
* :func:`export_network` - a :class:`~lif_export.network.SpikingSequential`: ``network_step.onnx``,
  ``network_sequence.onnx``, ``network_step.pt``, ``network_sequence.pt``, ``network_stateful.pt``,
  every state tensor a named input and output.

Both write ``manifest.json`` (:mod:`.manifest`) and ``vectors/<case>/`` (:mod:`.vectors`). A neuron
is a one-layer network on the way (:mod:`.model`); each format is one module in :mod:`.formats`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from torch import nn

from ..network import SpikingSequential
from .formats import DEFAULT_OPSET, ExportOptions
from .model import NetworkModel, NeuronModel
from .pipeline import DEFAULT_FORMATS, ExportResult, ExtraCases, export_model
from .spec import NeuronSpec, spec_from_module, spec_from_state_dict

__all__ = ["ExportResult", "NeuronSpec", "export", "export_network", "spec_from_module", "spec_from_state_dict"]


def export(
    neuron: NeuronSpec | nn.Module | None = None,
    out_dir: str | Path = "models",
    opset: int = DEFAULT_OPSET,
    dtype: str | None = None,
    report: Callable[[str], None] | None = None,
    formats: Iterable[str] = DEFAULT_FORMATS,
    name: str | None = None,
) -> ExportResult:
    """Write the artifacts, manifest and golden vectors of a single LIF neuron.

    Args:
        neuron: a :class:`NeuronSpec`, or a ``LIFNeuron``/``LIFCell``/``LIFSequence`` (trained or
            not; its hidden state is lifted into explicit inputs). ``None`` exports the default neuron.
        out_dir: destination folder (created if missing).
        opset: ONNX opset, from 17 to the newest the installed onnxruntime runs.
        dtype: ``"float32"`` or ``"float64"``; overrides a module's own dtype.
        report: called with one progress line per file.
        formats: the formats to write (see :data:`lif_export.export.formats.FORMATS`).
        name: the generated C library's name (``c`` format; default ``"lif"``).

    Returns:
        The folder and the manifest written.
    """
    if neuron is None:
        spec = NeuronSpec(dtype=dtype or "float32")
    elif isinstance(neuron, NeuronSpec):
        spec = neuron if dtype is None else NeuronSpec(**{**neuron.__dict__, "dtype": dtype})
    else:
        spec = spec_from_module(neuron, dtype)
    return export_model(NeuronModel(spec), out_dir, formats, ExportOptions(opset=opset, c_name=name), report)


def export_network(
    net: SpikingSequential,
    feature_shape: tuple[int, ...],
    out_dir: str | Path = "models",
    dtype: str = "float32",
    opset: int = DEFAULT_OPSET,
    report: Callable[[str], None] | None = None,
    extra_cases: ExtraCases | None = None,
    formats: Iterable[str] = DEFAULT_FORMATS,
    name: str | None = None,
    exactness: str | None = None,
) -> ExportResult:
    """Export a copy of ``net`` (in eval mode and ``dtype``; ``net`` itself is left as it is) for
    inputs ``[batch, *feature_shape]``.

    ``extra_cases`` adds golden-vector cases of your own: name -> (description,
    ``x[time, batch, *feature_shape]``). Raises ``TypeError`` for a layer that cannot be exported
    (naming it), before anything is written. ``name`` is the generated C library's name (``c`` format;
    default ``"net"``).

    ``exactness``: a network with ordinary ``nn.Linear``, ``nn.Conv2d``, ``nn.AvgPool2d`` or BatchNorm
    (folded) layers is exported in the float tier (``manifest.json``: ``"exactness": "float"``; its
    results may differ between backends in the last bits, see docs/networks.md), any other in the exact
    tier. ``"exact"`` refuses such layers instead; ``"float"`` marks any network float tier.
    """
    options = ExportOptions(opset=opset, c_name=name)
    return export_model(NetworkModel(net, feature_shape, dtype, exactness), out_dir, formats, options, report,
                        extra_cases)
