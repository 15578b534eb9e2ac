"""The ONNX format: a step graph and a ``Scan`` sequence graph, built node by node per layer.

:data:`EMITTERS` maps each layer type to the function that writes its step as ONNX nodes with
exactly the arithmetic of ``docs/semantics.md`` (``Mul`` then ``Add``, never a fused
multiply-add; ``Greater``; for the reset a select (``Where``, or the same bits from a ``Min``:
``emit_zero_reset`` in ``onnx_builder.py``) or ``Mul`` + ``Sub``). The graphs are written,
not traced, so that every operation is the one PyTorch runs. The same step serves the step graph
and the body of the sequence graph's ``Scan``, so the two cannot drift apart.

Step graph:      x[batch, *F], *states            -> output, *next states
Sequence graph:  x[time, batch, *F], *states      -> output[time, ...], *final states, *traces[time, ...]

Adding a layer type is one emitter function here, registered with ``@emitter(LayerType)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from ...errors import InvalidTypeError, InvalidValueError
from ...modules import LIFCell
from ...network import (
    AdaptiveLIFLayer,
    ExactConv2d,
    ExactLinear,
    LeakyIntegratorLayer,
    LIFLayer,
    RecurrentLIFLayer,
    SynapticLIFLayer,
)
from ..float_tier import conv_pads
from ..manifest import ArtifactEntry
from ..model import ExportModel, as_model
from ..spec import NeuronSpec
from .base import DEFAULT_OPSET, Artifact, ExportOptions, LayerRegistry, embedded_metadata, model_io
from .onnx_builder import (
    ONNX_DTYPES,
    Graph,
    StateIO,
    StepFn,
    emit_fire_and_reset,
    emit_integrate,
    emit_lif,
    emit_zero_reset,
    sequence_model,
    step_model,
)

#: Oldest opset the graphs are built for.
MIN_OPSET = 17

#: ``emit(graph, layer, x, states, dtype, hint) -> (output, next states)``, all tensor names.
LayerEmitter = Callable[[Graph, Any, str, list[str], str, str], tuple[str, list[str]]]

#: Layer type -> its emitter. Only layers whose arithmetic is the same on every backend are here.
EMITTERS: LayerRegistry[LayerEmitter] = LayerRegistry(
    "ONNX", "bit-identically: an ordinary Linear's or Conv2d's sum order differs between backends; "
    "lif_export.network.to_exact converts them")
emitter = EMITTERS.register


def param(g: Graph, layer: Any, name: str, dtype: str, hint: str, value: torch.Tensor | None = None) -> str:
    """A layer parameter (or ``value``) as a constant of ``dtype``; returns its name."""
    tensor = getattr(layer, name) if value is None else value
    np_dtype = np.float32 if dtype == "float32" else np.float64
    return g.const(f"{hint}{name}", tensor.detach().cpu().numpy().astype(np_dtype))


def lif_parameters(g: Graph, layer: Any, dtype: str, hint: str) -> tuple[str, str, str | None]:
    """``beta``, ``threshold`` and (for the zero reset) ``v_reset`` as forward uses them."""
    with torch.no_grad():
        beta, threshold, v_reset = layer.neuron_parameters()
    return (param(g, layer, "beta", dtype, hint, beta), param(g, layer, "threshold", dtype, hint, threshold),
            param(g, layer, "v_reset", dtype, hint, v_reset) if layer.reset == "zero" else None)


# -- neuron models ---------------------------------------------------------------------------------

@emitter(LIFCell, LIFLayer)
def emit_lif_layer(g: Graph, layer: Any, x: str, states: list[str], dtype: str,
                   hint: str) -> tuple[str, list[str]]:
    """The LIF step, with ``LIFLayer``'s reset timings exactly as ``LIFLayer.step`` computes them."""
    beta, threshold, v_reset = lif_parameters(g, layer, dtype, hint)
    elem, v = ONNX_DTYPES[dtype], states[0]
    timing = getattr(layer, "reset_timing", "same_step")
    if timing == "same_step":
        spike, v_next = emit_lif(g, x, v, beta, threshold, v_reset, layer.reset, elem, hint)
        return spike, [v_next]
    pending = g.op1("Greater", [v, threshold], f"{hint}pending")
    pending_f = g.op1("Cast", [pending], f"{hint}pending_f", to=elem)
    if layer.reset == "zero":
        assert v_reset is not None
        u = emit_integrate(g, x, emit_zero_reset(g, v, pending, pending_f, threshold, v_reset, f"{hint}held_"), beta,
                           hint)
    else:
        u = emit_integrate(g, x, v, beta, hint)
        if layer.reset == "subtract":
            u = g.op1("Sub", [u, g.op1("Mul", [pending_f, threshold], f"{hint}late_drop")], f"{hint}u_late")
    spike, v_next, _ = emit_fire_and_reset(g, u, threshold, None, "none", elem, hint)
    if timing == "same_step_retest":
        net_reset = g.op1("Sub", [spike, pending_f], f"{hint}net_reset")
        v_next = g.op1("Sub", [u, g.op1("Mul", [net_reset, threshold], f"{hint}drop")], f"{hint}v_next")
    return spike, [v_next]


@emitter(SynapticLIFLayer)
def emit_synaptic(g: Graph, layer: Any, x: str, states: list[str], dtype: str,
                  hint: str) -> tuple[str, list[str]]:
    beta, threshold, v_reset = lif_parameters(g, layer, dtype, hint)
    i_next = emit_integrate(g, x, states[0], param(g, layer, "alpha", dtype, hint), f"{hint}syn_")
    spike, v_next = emit_lif(g, i_next, states[1], beta, threshold, v_reset, layer.reset, ONNX_DTYPES[dtype], hint)
    return spike, [i_next, v_next]


@emitter(AdaptiveLIFLayer)
def emit_adaptive(g: Graph, layer: Any, x: str, states: list[str], dtype: str,
                  hint: str) -> tuple[str, list[str]]:
    beta, threshold, v_reset = lif_parameters(g, layer, dtype, hint)
    v, a = states
    u = emit_integrate(g, x, v, beta, hint)
    theta = g.op1("Add", [threshold, a], f"{hint}theta")
    spike, v_next, _ = emit_fire_and_reset(g, u, theta, v_reset, layer.reset, ONNX_DTYPES[dtype], hint)
    a_next = g.op1("Add", [g.op1("Mul", [param(g, layer, "rho", dtype, hint), a], f"{hint}rho_a"),
                           g.op1("Mul", [param(g, layer, "b", dtype, hint), spike], f"{hint}b_s")], f"{hint}a_next")
    return spike, [v_next, a_next]


@emitter(RecurrentLIFLayer)
def emit_recurrent(g: Graph, layer: Any, x: str, states: list[str], dtype: str,
                   hint: str) -> tuple[str, list[str]]:
    beta, threshold, v_reset = lif_parameters(g, layer, dtype, hint)
    v, s = states
    recurrent = emit_exact_linear(g, layer.recurrent, s, [], dtype, f"{hint}rec_")[0]
    u = g.op1("Add", [emit_integrate(g, x, v, beta, f"{hint}ff_"), recurrent], f"{hint}u")
    spike, v_next, _ = emit_fire_and_reset(g, u, threshold, v_reset, layer.reset, ONNX_DTYPES[dtype], hint)
    return spike, [v_next, spike]


@emitter(LeakyIntegratorLayer)
def emit_leaky(g: Graph, layer: Any, x: str, states: list[str], dtype: str, hint: str) -> tuple[str, list[str]]:
    v_next = emit_integrate(g, x, states[0], param(g, layer, "beta", dtype, hint), hint)
    return v_next, [v_next]


# -- exact linear layers ---------------------------------------------------------------------------

def emit_quantize(g: Graph, layer: Any, x: str, dtype: str, hint: str) -> str:
    """The layer's input on its grid: Clip, Mul, Round, Div (each exact), as ``quantize`` in PyTorch."""
    np_dtype = np.float32 if dtype == "float32" else np.float64
    lo = g.const(f"{hint}input_min", np.array(-layer.input_bound, np_dtype))
    hi = g.const(f"{hint}input_max", np.array(layer.input_bound, np_dtype))
    scale = g.const(f"{hint}scale", np.array(layer.scale, np_dtype))
    scaled = g.op1("Mul", [g.op1("Clip", [x, lo, hi], f"{hint}clip"), scale], f"{hint}scaled")
    return g.op1("Div", [g.op1("Round", [scaled], f"{hint}rounded"), scale], f"{hint}xq")


@emitter(ExactLinear)
def emit_exact_linear(g: Graph, layer: Any, x: str, states: list[str], dtype: str,
                      hint: str) -> tuple[str, list[str]]:
    """As ``forward``: quantize, float64 ``MatMul`` and ``Add`` (exact sums), cast back once."""
    q = emit_quantize(g, layer, x, dtype, hint)
    with torch.no_grad():
        weight, bias = layer.quantized()
    wide = g.op1("MatMul", [g.op1("Cast", [q], f"{hint}x64", to=ONNX_DTYPES["float64"]),
                            g.const(f"{hint}weight_t", weight.double().t().contiguous().numpy())], f"{hint}xw")
    if bias is not None:
        wide = g.op1("Add", [wide, g.const(f"{hint}bias", bias.double().numpy())], f"{hint}xw_b")
    return g.op1("Cast", [wide], f"{hint}linear", to=ONNX_DTYPES[dtype]), []


@emitter(ExactConv2d)
def emit_exact_conv2d(g: Graph, layer: Any, x: str, states: list[str], dtype: str,
                      hint: str) -> tuple[str, list[str]]:
    """onnxruntime has no float64 ``Conv``, so the same exact sum as k*k float64 ``MatMul``s over
    shifted windows (NHWC), added up: every partial sum is exact, so the order does not matter.

    The window of tap ``(dy, dx)`` starts at ``(dy*d_h, dx*d_w)`` (the dilation) and takes every
    stride-th row and column of the ``H + 2p - d (k-1)`` positions where the dilated kernel fits."""
    k, p, stride, dilation = layer.kernel_size, layer.padding, list(layer.stride), list(layer.dilation)
    x64 = g.op1("Cast", [emit_quantize(g, layer, x, dtype, hint)], f"{hint}x64", to=ONNX_DTYPES["float64"])
    if p:
        x64 = g.op1("Pad", [x64, g.const(f"{hint}pads", np.array([0, 0, p, p, 0, 0, p, p], np.int64))],
                    f"{hint}padded")
    nhwc = g.op1("Transpose", [x64], f"{hint}nhwc", perm=[0, 2, 3, 1])
    shape = g.op1("Shape", [nhwc], f"{hint}shape")
    height = g.op1("Slice", [shape, *(g.const(f"{hint}{n}", np.array([v], np.int64))
                                      for n, v in (("h_start", 1), ("h_end", 3)))], f"{hint}hw")
    extent = [d * (k - 1) for d in dilation]  # the dilated kernel's extent minus 1, per axis
    reach = np.array(extent[:1] if extent[0] == extent[1] else extent, np.int64)  # one value broadcasts
    out_hw = g.op1("Sub", [height, g.const(f"{hint}k_minus_1", reach)], f"{hint}out_hw")
    steps = [] if stride == [1, 1] else [g.const(f"{hint}steps", np.array(stride, np.int64))]
    with torch.no_grad():
        weight, bias = (t.double() for t in layer.quantized())
    total = None
    for dy in range(k):
        for dx in range(k):
            start = g.const(f"{hint}start_{dy}_{dx}", np.array([dy * dilation[0], dx * dilation[1]], np.int64))
            window = g.op1("Slice", [nhwc, start, g.op1("Add", [start, out_hw], f"{hint}end_{dy}_{dx}"),
                                     g.const(f"{hint}axes_{dy}_{dx}", np.array([1, 2], np.int64)), *steps],
                           f"{hint}window_{dy}_{dx}")
            tap = weight[:, :, dy, dx].t().contiguous().numpy()  # [in, out]
            term = g.op1("MatMul", [window, g.const(f"{hint}w_{dy}_{dx}", tap)], f"{hint}term_{dy}_{dx}")
            total = term if total is None else g.op1("Add", [total, term], f"{hint}sum_{dy}_{dx}")
    assert total is not None
    total = g.op1("Add", [total, g.const(f"{hint}bias", bias.numpy())], f"{hint}biased")
    nchw = g.op1("Transpose", [total], f"{hint}nchw", perm=[0, 3, 1, 2])
    return g.op1("Cast", [nchw], f"{hint}conv", to=ONNX_DTYPES[dtype]), []


# -- ordinary layers that are exact as they are ----------------------------------------------------

def _pair(value: int | tuple[int, ...]) -> list[int]:
    return [value, value] if isinstance(value, int) else list(value)


@emitter(nn.Flatten)
def emit_flatten(g: Graph, layer: Any, x: str, states: list[str], dtype: str, hint: str) -> tuple[str, list[str]]:
    if layer.start_dim != 1 or layer.end_dim != -1:
        raise InvalidTypeError(f"cannot export Flatten(start_dim={layer.start_dim}, end_dim={layer.end_dim}): "
                        "only Flatten(start_dim=1) (everything after the batch dim)")
    return g.op1("Flatten", [x], f"{hint}flat", axis=1), []


@emitter(nn.Identity, nn.Dropout)
def emit_identity(g: Graph, layer: Any, x: str, states: list[str], dtype: str,
                  hint: str) -> tuple[str, list[str]]:
    return g.op1("Identity", [x], f"{hint}identity"), []  # Dropout: exported networks run in eval mode


@emitter(nn.MaxPool2d)
def emit_maxpool(g: Graph, layer: Any, x: str, states: list[str], dtype: str, hint: str) -> tuple[str, list[str]]:
    if (_pair(layer.padding) != [0, 0] or _pair(layer.dilation) != [1, 1] or layer.ceil_mode
            or layer.return_indices):
        raise InvalidTypeError("cannot export MaxPool2d with padding, dilation, ceil_mode or return_indices: only the "
                        "plain pool is exported as is")
    k, stride = _pair(layer.kernel_size), _pair(layer.stride or layer.kernel_size)
    return g.op1("MaxPool", [x], f"{hint}maxpool", kernel_shape=k, strides=stride), []


# -- the float tier: ordinary layers as ordinary float operations (docs/networks.md) -----------------

#: Float-tier layer type -> its emitter; a float-tier model also uses every exact emitter (:func:`registry_for`).
FLOAT_EMITTERS: LayerRegistry[LayerEmitter] = LayerRegistry("ONNX", "in the float tier")


def _float32_only(layer: Any, dtype: str, op: str) -> None:
    if dtype != "float32":
        raise InvalidTypeError(f"cannot export {type(layer).__name__} to ONNX in {dtype}: onnxruntime has no {dtype} "
                               f"{op}; export the float tier in float32")


@FLOAT_EMITTERS.register(nn.Linear)
def emit_linear(g: Graph, layer: Any, x: str, states: list[str], dtype: str, hint: str) -> tuple[str, list[str]]:
    """``x @ weight.T + bias``: a ``MatMul`` and an ``Add``."""
    out = g.op1("MatMul", [x, param(g, layer, "weight_t", dtype, hint, layer.weight.t())], f"{hint}matmul")
    if layer.bias is not None:
        out = g.op1("Add", [out, param(g, layer, "bias", dtype, hint)], f"{hint}linear")
    return out, []


@FLOAT_EMITTERS.register(nn.Conv2d)
def emit_conv2d(g: Graph, layer: Any, x: str, states: list[str], dtype: str, hint: str) -> tuple[str, list[str]]:
    """``Conv`` with the layer's stride, dilation and zero padding (groups 1: :func:`check_float_layer`)."""
    _float32_only(layer, dtype, "Conv")
    inputs = [x, param(g, layer, "weight", dtype, hint)] + ([param(g, layer, "bias", dtype, hint)]
                                                            if layer.bias is not None else [])
    return g.op1("Conv", inputs, f"{hint}conv", kernel_shape=_pair(layer.kernel_size), strides=_pair(layer.stride),
                 dilations=_pair(layer.dilation), pads=conv_pads(layer), group=1), []


@FLOAT_EMITTERS.register(nn.AvgPool2d)
def emit_avgpool(g: Graph, layer: Any, x: str, states: list[str], dtype: str, hint: str) -> tuple[str, list[str]]:
    """``AveragePool``; sum pooling (``divisor_override=1``) multiplies the average back by the window's
    size, ONNX having no sum pooling (ceil_mode and other divisors are refused by :func:`check_float_layer`)."""
    _float32_only(layer, dtype, "AveragePool")
    kernel = _pair(layer.kernel_size)
    sum_pool = layer.divisor_override == 1
    out = g.op1("AveragePool", [x], f"{hint}avgpool", kernel_shape=kernel,
                strides=_pair(layer.stride or layer.kernel_size), pads=_pair(layer.padding) * 2,
                count_include_pad=int(layer.count_include_pad or sum_pool))
    if sum_pool:
        out = g.op1("Mul", [out, g.const(f"{hint}window", np.array(kernel[0] * kernel[1], np.dtype(dtype)))],
                    f"{hint}sumpool")
    return out, []


def registry_for(model: ExportModel) -> LayerRegistry[LayerEmitter]:
    """The emitters a model may use: the exact ones, and the float-tier ones too for a float-tier model."""
    if model.exactness == "exact":
        return EMITTERS
    registry: LayerRegistry[LayerEmitter] = LayerRegistry("ONNX", FLOAT_EMITTERS.why)
    registry.update(FLOAT_EMITTERS)
    registry.update(EMITTERS)
    return registry


# -- graphs ------------------------------------------------------------------------------------------

def step_function(model: ExportModel) -> StepFn:
    """The model's step as ONNX nodes: each layer through its emitter, the states threaded through."""
    emitters = [registry_for(model).emitter_for(layer) for layer, _ in model.layers]  # refuses unexportable ones
    single = len(model.layers) == 1

    def step(g: Graph, x: str, states: list[str]) -> tuple[str, list[str]]:
        new_states = list(states)
        for i, ((layer, indices), emit) in enumerate(zip(model.layers, emitters, strict=True)):
            x, layer_states = emit(g, layer, x, [states[k] for k in indices], model.dtype, "" if single else f"l{i}_")
            for k, name in zip(indices, layer_states, strict=True):
                new_states[k] = name
        return x, new_states

    return step


def _state_io(model: ExportModel) -> list[StateIO]:
    return [StateIO(s.input, s.output, s.trace, s.dims) for s in model.states]


def step_graph(model: ExportModel | NeuronSpec, opset: int = DEFAULT_OPSET,
               metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """One time step: ``(x, *states) -> (output, *next states)``."""
    model = as_model(model)
    return step_model(f"{model.prefix}_step", Graph(), step_function(model), model.x_dims, model.output,
                      model.out_dims, _state_io(model), ONNX_DTYPES[model.dtype], opset, metadata or {})


def sequence_graph(model: ExportModel | NeuronSpec, opset: int = DEFAULT_OPSET,
                   metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    """A ``Scan`` over a dynamic number of steps (``T = 0`` included), every state in and out;
    feeding a stream in chunks with the states carried equals one unsplit run."""
    model = as_model(model)
    return sequence_model(f"{model.prefix}_sequence", Graph(), step_function(model), model.x_dims, model.output,
                          model.out_dims, _state_io(model), ONNX_DTYPES[model.dtype], opset, metadata or {},
                          model.out_like_state)


def check(model: onnx.ModelProto) -> None:
    """``onnx.checker`` with full shape inference."""
    onnx.checker.check_model(model, full_check=True)


@functools.cache
def newest_runnable_opset() -> int:
    """The newest opset that both onnx and the installed onnxruntime run (probed once per process)."""
    spec = NeuronSpec()
    x = np.zeros((1, 1, 1), dtype=np.float32)
    newest = MIN_OPSET
    for opset in range(MIN_OPSET, onnx.defs.onnx_opset_version() + 1):
        try:
            for graph, feed in ((step_graph(spec, opset), {"x": x[0], "v": x[0]}),
                                (sequence_graph(spec, opset), {"x": x, "v": x[0]})):
                session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
                session.run(None, feed)
        except Exception:
            break
        newest = opset
    return newest


def check_opset(opset: object) -> int:
    """Raise a clear error for an opset these graphs cannot be built or run at."""
    newest = newest_runnable_opset()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= newest:
        raise InvalidValueError(
            f"opset must be an integer from {MIN_OPSET} to {newest} (the newest the installed onnxruntime runs), "
            f"got {opset!r}"
        )
    return int(opset)


def _writer(graph: onnx.ModelProto, file: str) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        onnx.save(graph, folder / file)
        ort.InferenceSession(str(folder / file), providers=["CPUExecutionProvider"])  # loads, or raises here

    return write


def artifacts(model: ExportModel, options: ExportOptions) -> list[Artifact]:
    """``<prefix>_step.onnx`` and ``<prefix>_sequence.onnx``; graphs built and fully checked here."""
    opset = check_opset(options.opset)
    planned = []
    for kind, build in (("step", step_graph), ("sequence", sequence_graph)):
        entry: ArtifactEntry = {
            "name": f"onnx_{kind}", "file": f"{model.prefix}_{kind}.onnx", "format": "onnx", "kind": kind,
            "method": "run", "opset": opset, "calling_convention": "flat", **model_io(model, kind == "sequence")}
        graph = build(model, opset, embedded_metadata(entry))
        check(graph)
        planned.append(Artifact(entry, _writer(graph, entry["file"])))
    return planned
