"""The NIR format: the model as a Neuromorphic Intermediate Representation graph, ``<prefix>.nir``.

NIR describes neurons by continuous-time equations (``tau dv/dt = (v_leak - v) + r I``); a
simulator reads them at a time step ``dt`` by a discretisation rule. :class:`Discretisation` is the
one statement of that rule, shared by this writer and the reader (:func:`lif_export.nir.from_nir`);
``docs/nir.md`` derives it:

=======  ==========================  ==================================
method   decay per step ``beta``     gain ``g`` (on ``r I`` and ``v_leak``)
=======  ==========================  ==================================
euler    ``1 - dt/tau``              ``dt/tau``
exp      ``exp(-dt/tau)``            ``1 - exp(-dt/tau)``
=======  ==========================  ==================================

so that ``v' = beta v + g (r I + v_leak)``. A layer is written with ``r = 1/g`` (its input enters
unscaled, as in ``u = beta v + x``), ``v_leak = 0``, ``tau`` and ``r`` in float64 (they read back
to the same float32 ``beta``), and ``dt`` and the method in the graph's metadata. :data:`NODES`
maps each layer type to the function writing it as NIR nodes; whatever NIR cannot express (the
subtract reset, the delayed reset timings, the adaptive LIF, max pooling) raises a ``ValueError``
naming the layer before anything is written. The ``nir`` package is imported only when a graph is
built (``pip install 'lif_export[convert]'``).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from ... import __version__
from ...errors import InvalidValueError
from ...modules import LIFCell
from ...network import (
    AdaptiveLIFLayer,
    ExactConv2d,
    ExactLinear,
    LeakyIntegratorLayer,
    LIFLayer,
    RecurrentLIFLayer,
    SpikingSequential,
    SynapticLIFLayer,
)
from ..model import ExportModel
from .base import Artifact, ExportOptions, LayerRegistry, model_io

#: The time step (seconds) of ``--format nir`` artifacts; :func:`lif_export.nir.to_nir` takes any.
DEFAULT_DT = 1e-3
METHODS = ("euler", "exp")
#: An input scale ``g r`` this close to 1 (relative) is exactly 1: writers store ``r = tau/dt`` rounded
#: to float32, a few ulps away (snnTorch's graphs are 3e-7 off).
UNIT_TOLERANCE = 2.0**-20
#: Under ``exp``, a time constant shorter than ``dt / EXP_MAX_STEPS`` is refused (``beta < e**-40``: the
#: neuron forgets within one step; almost surely a mis-written tau, see :meth:`Discretisation.decay`).
EXP_MAX_STEPS = 40.0


def import_nir() -> ModuleType:
    """The ``nir`` package, or an ``ImportError`` saying how to install it."""
    try:
        import nir
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("NIR support needs the nir package: pip install 'lif_export[convert]'") from err
    return nir


@dataclass(frozen=True)
class Discretisation:
    """How a NIR time constant becomes a per-step decay at the time step ``dt`` (seconds)."""

    dt: float
    method: str = "euler"

    def __post_init__(self) -> None:
        if isinstance(self.dt, bool) or not isinstance(self.dt, (int, float)) or not (
                math.isfinite(self.dt) and self.dt > 0):
            raise InvalidValueError(f"dt must be a finite time step > 0 (seconds), got {self.dt!r}")
        if self.method not in METHODS:
            raise InvalidValueError(f"method must be one of {list(METHODS)}, got {self.method!r}")
        object.__setattr__(self, "dt", float(self.dt))

    def metadata(self) -> dict[str, Any]:
        return {"dt": self.dt, "discretisation": self.method, "generator": f"lif_export {__version__}"}

    def decay(self, tau: np.ndarray, node: str, what: str = "tau") -> np.ndarray:
        """``beta`` (float64) for the time constants ``tau``; refuses those the step cannot resolve.

        A ``tau`` below ``dt`` gives an Euler ``beta < 0``: no neuron. Norse's ``to_nir`` writes
        ``tau = dt / tau_mem_inv`` instead of ``1 / tau_mem_inv``, so its default cell
        (``tau_mem_inv = 100/s``, exported at ``dt = 1e-3``) reads as ``tau = 1e-5 s``, ``beta = -99``:
        the message says how to read such a graph (``norse_export_dt``).
        """
        tau = np.asarray(tau, dtype=np.float64)
        if not np.all(tau >= 0):
            raise InvalidValueError(f"NIR node {node!r}: {what} must be >= 0 seconds, got {_sample(tau[~(tau >= 0)])}")
        with np.errstate(divide="ignore"):
            steps = self.dt / tau  # inf where tau == 0
        too_short = steps > 1 if self.method == "euler" else np.isfinite(steps) & (steps > EXP_MAX_STEPS)
        if np.any(too_short):
            shortest = float(tau[too_short].min())
            beta = 1 - self.dt / shortest if self.method == "euler" else math.exp(-self.dt / shortest)
            raise InvalidValueError(
                f"NIR node {node!r}: {what} = {shortest:.6g} s is too short for the time step dt = {self.dt:g} s "
                f"({self.method} gives beta = {beta:.6g}). Norse's to_nir writes tau = dt/tau_mem_inv instead of "
                "1/tau_mem_inv (its default cell comes out as tau = 1e-05 s, beta = -99): for a graph written by "
                "Norse pass norse_export_dt=<the dt it was exported with, 0.001 by default>; otherwise choose a "
                "smaller dt")
        return 1.0 - steps if self.method == "euler" else np.exp(-steps)

    def gain(self, tau: np.ndarray) -> np.ndarray:
        """``g``: what multiplies ``r I`` and ``v_leak`` in a step (``dt/tau`` or ``1 - exp(-dt/tau)``)."""
        with np.errstate(divide="ignore"):
            steps = self.dt / np.asarray(tau, dtype=np.float64)
        return steps if self.method == "euler" else -np.expm1(-steps)

    def time_constant(self, beta: np.ndarray) -> np.ndarray:
        """``tau`` for decays ``0 <= beta < 1`` (the inverse of :meth:`decay`)."""
        beta = np.asarray(beta, dtype=np.float64)
        if self.method == "euler":
            return self.dt / (1.0 - beta)
        with np.errstate(divide="ignore"):
            return -self.dt / np.log(beta)  # beta == 0: tau = 0, which reads back as beta = exp(-inf) = 0


@dataclass
class NirSource:
    """The NIR nodes a layer was read from, kept so that writing it again gives those nodes back.

    Many time constants round to the same float32 ``beta``; a layer read from a graph (with no input
    scale folded into weights) remembers the nodes, and :func:`graph` writes them again as long as
    the layer still has the parameters they were read as, at the same ``dt`` and method.
    """

    nodes: list[tuple[str, Any]]  # (name suffix, NIR node), in chain order
    rule: Discretisation
    parameters: dict[str, np.ndarray]  # name -> the value set on the layer (float64)

    def describes(self, layer: nn.Module, rule: Discretisation) -> bool:
        if rule != self.rule:
            return False
        current = _layer_parameters(layer)
        return current.keys() == self.parameters.keys() and all(
            np.array_equal(current[k], v) for k, v in self.parameters.items())


def _layer_parameters(layer: Any) -> dict[str, np.ndarray]:
    """A neuron layer's parameters as forward uses them, plus its reset and timing as codes."""
    values: dict[str, Any] = {}
    if hasattr(layer, "neuron_parameters"):
        with torch.no_grad():
            values.update(zip(("beta", "threshold", "v_reset"), layer.neuron_parameters(), strict=True))
    elif hasattr(layer, "beta"):
        values["beta"] = layer.beta
    if hasattr(layer, "alpha"):
        values["alpha"] = layer.alpha
    out = {k: v.detach().double().cpu().numpy() for k, v in values.items()}
    for name in ("reset", "reset_timing"):
        if hasattr(layer, name):
            out[name] = np.array([ord(c) for c in getattr(layer, name)], dtype=np.float64)
    return out


def remember_source(layer: nn.Module, nodes: list[tuple[str, Any]], rule: Discretisation) -> nn.Module:
    """Attach the :class:`NirSource` of ``layer`` (a plain attribute; TorchScript ignores it)."""
    layer.nir_source = NirSource(nodes, rule, _layer_parameters(layer))  # type: ignore[assignment]
    return layer


# -- writing layers as nodes -------------------------------------------------------------------------

@dataclass(frozen=True)
class NodeContext:
    """What a node writer needs besides the layer."""

    nir: ModuleType
    rule: Discretisation
    dtype: np.dtype
    name: str  # the layer's node name
    in_shape: tuple[int, ...]  # per-sample input shape
    out_shape: tuple[int, ...]


#: ``write(layer, ctx) -> [(name suffix, NIR node), ...]`` in chain order (empty: the layer is an identity).
NodeWriter = Callable[[Any, NodeContext], list[tuple[str, Any]]]

#: Layer type -> its writer.
NODES: LayerRegistry[NodeWriter] = LayerRegistry("NIR", "lif_export has no pooling layer NIR could express")
node = NODES.register


def _sample(values: np.ndarray) -> str:
    flat = np.asarray(values).ravel()
    return np.array2string(flat[:4], precision=6) + (" ..." if flat.size > 4 else "")


def _per_neuron(value: torch.Tensor, ctx: NodeContext) -> np.ndarray:
    return np.broadcast_to(value.detach().cpu().numpy().astype(ctx.dtype), ctx.out_shape).copy()


def _neuron_parameters(layer: Any, ctx: NodeContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with torch.no_grad():
        beta, threshold, v_reset = layer.neuron_parameters()
    return _per_neuron(beta, ctx), _per_neuron(threshold, ctx), _per_neuron(v_reset, ctx)


def _leak(beta: np.ndarray, ctx: NodeContext, what: str = "beta") -> tuple[np.ndarray, np.ndarray]:
    """``(tau, r)`` (float64: a float32 tau would not always read back to the same ``beta``) for decays
    ``beta < 1`` with an input scale of exactly 1; checks that the reader recovers every ``beta``."""
    if np.any(beta >= 1):
        raise InvalidValueError(f"layer {ctx.name!r}: {what} = 1 for some but not all neurons (NIR's leaky nodes need "
                         f"tau < inf and its integrators have no leak), got {what} = {_sample(beta)}")
    tau = ctx.rule.time_constant(beta)
    back = ctx.rule.decay(tau, ctx.name).astype(ctx.dtype)
    if not np.array_equal(back, beta):
        raise InvalidValueError(
            f"layer {ctx.name!r}: {what} = {_sample(beta)} cannot be written as a time constant that "
                         f"reads back to the same value at dt = {ctx.rule.dt:g} ({ctx.rule.method})")
    return tau, 1.0 / ctx.rule.gain(tau)


def _zeros(ctx: NodeContext) -> np.ndarray:
    return np.zeros(ctx.out_shape, dtype=ctx.dtype)


def _refuse(layer: Any, ctx: NodeContext, why: str) -> list[tuple[str, Any]]:
    raise InvalidValueError(f"cannot write layer {ctx.name!r} ({type(layer).__name__}) as NIR: {why}")


def _reset_zero_only(layer: Any, ctx: NodeContext) -> None:
    if getattr(layer, "reset_timing", "same_step") != "same_step":
        _refuse(layer, ctx, f"reset_timing={layer.reset_timing!r}: NIR's neurons reset in the step they fire")
    if layer.reset == "subtract":
        _refuse(layer, ctx, "NIR's LIF resets to v_reset; the subtract reset has no NIR node")


@node(LIFCell, LIFLayer)
def write_lif(layer: Any, ctx: NodeContext) -> list[tuple[str, Any]]:
    """Zero reset: ``LIF`` (``IF`` when ``beta = 1``); no reset: ``LI`` (``I``) then ``Threshold``."""
    _reset_zero_only(layer, ctx)
    nir = ctx.nir
    beta, threshold, v_reset = _neuron_parameters(layer, ctx)
    integrator = bool(np.all(beta == 1))
    if integrator:
        r = np.full(ctx.out_shape, 1.0 / ctx.rule.dt)
    else:
        tau, r = _leak(beta, ctx)
    if layer.reset == "none":
        leaky = nir.I(r=r) if integrator else nir.LI(tau=tau, r=r, v_leak=_zeros(ctx))
        return [("", leaky), ("_threshold", nir.Threshold(threshold=threshold))]
    if integrator:
        return [("", nir.IF(r=r, v_threshold=threshold, v_reset=v_reset))]
    return [("", nir.LIF(tau=tau, r=r, v_leak=_zeros(ctx), v_threshold=threshold, v_reset=v_reset))]


@node(SynapticLIFLayer)
def write_synaptic(layer: Any, ctx: NodeContext) -> list[tuple[str, Any]]:
    """``CubaLIF`` (no reset: ``CubaLI`` then ``Threshold``), the current updated before the potential."""
    _reset_zero_only(layer, ctx)
    beta, threshold, v_reset = _neuron_parameters(layer, ctx)
    tau_syn, w_in = _leak(_per_neuron(layer.alpha, ctx), ctx, "alpha")
    tau_mem, r = _leak(beta, ctx)
    common = {"tau_syn": tau_syn, "tau_mem": tau_mem, "r": r, "v_leak": _zeros(ctx), "w_in": w_in}
    if layer.reset == "none":
        return [("", ctx.nir.CubaLI(**common)), ("_threshold", ctx.nir.Threshold(threshold=threshold))]
    return [("", ctx.nir.CubaLIF(**common, v_threshold=threshold, v_reset=v_reset))]


@node(LeakyIntegratorLayer)
def write_leaky(layer: Any, ctx: NodeContext) -> list[tuple[str, Any]]:
    beta = _per_neuron(layer.beta, ctx)
    if np.all(beta == 1):
        return [("", ctx.nir.I(r=np.full(ctx.out_shape, 1.0 / ctx.rule.dt)))]
    tau, r = _leak(beta, ctx)
    return [("", ctx.nir.LI(tau=tau, r=r, v_leak=_zeros(ctx)))]


@node(RecurrentLIFLayer)
def write_recurrent(layer: Any, ctx: NodeContext) -> list[tuple[str, Any]]:
    """A subgraph: ``input -> lif -> output`` with the recurrent edge ``lif -> w_rec -> lif``.

    Our step adds ``W s`` after ``beta v + x``; NIR's LIF sees ``x + W s`` as one input (the same
    sum in exact arithmetic): the graph describes the network, not its rounding.
    """
    _reset_zero_only(layer, ctx)
    nir = ctx.nir
    (_, lif), = write_lif(layer, ctx)
    with torch.no_grad():
        weight, _ = layer.recurrent.quantized()
    shape = np.array(ctx.out_shape)
    sub = nir.NIRGraph(nodes={"input": nir.Input(input_type=shape), "lif": lif,
                              "w_rec": nir.Linear(weight=weight.detach().cpu().numpy().astype(ctx.dtype)),
                              "output": nir.Output(output_type=shape)},
                       edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    return [("", sub)]


@node(AdaptiveLIFLayer)
def write_adaptive(layer: Any, ctx: NodeContext) -> list[tuple[str, Any]]:
    return _refuse(layer, ctx, "NIR has no adaptive-threshold neuron")


@node(ExactLinear, nn.Linear)
def write_linear(layer: Any, ctx: NodeContext) -> list[tuple[str, Any]]:
    """``Affine`` (``Linear`` without a bias); an exact layer's weights as forward uses them (on the grid)."""
    with torch.no_grad():
        weight, bias = layer.quantized() if isinstance(layer, ExactLinear) else (layer.weight, layer.bias)
    w = weight.detach().cpu().numpy().astype(ctx.dtype)
    if bias is None:
        return [("", ctx.nir.Linear(weight=w))]
    return [("", ctx.nir.Affine(weight=w, bias=bias.detach().cpu().numpy().astype(ctx.dtype)))]


@node(ExactConv2d, nn.Conv2d)
def write_conv2d(layer: Any, ctx: NodeContext) -> list[tuple[str, Any]]:
    with torch.no_grad():
        weight, bias = layer.quantized() if isinstance(layer, ExactConv2d) else (layer.weight, layer.bias)
    out_channels = weight.shape[0]
    b = np.zeros(out_channels, ctx.dtype) if bias is None else bias.detach().cpu().numpy().astype(ctx.dtype)
    return [("", ctx.nir.Conv2d(
        input_shape=tuple(ctx.in_shape[1:]), weight=weight.detach().cpu().numpy().astype(ctx.dtype),
        stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=getattr(layer, "groups", 1),
        bias=b))]


@node(nn.Flatten)
def write_flatten(layer: Any, ctx: NodeContext) -> list[tuple[str, Any]]:
    """NIR's dims leave out the batch: ``Flatten(start_dim=1)`` is NIR's ``start_dim=0``."""
    if layer.start_dim < 1:
        _refuse(layer, ctx, f"start_dim={layer.start_dim} flattens the batch dimension")
    end = layer.end_dim - 1 if layer.end_dim > 0 else layer.end_dim
    return [("", ctx.nir.Flatten(input_type={"input": np.array(ctx.in_shape)}, start_dim=layer.start_dim - 1,
                                 end_dim=end))]


@node(nn.Identity, nn.Dropout)
def write_identity(layer: Any, ctx: NodeContext) -> list[tuple[str, Any]]:
    return []  # Dropout: exported networks run in eval mode


@node(nn.AvgPool2d)
def write_avgpool(layer: Any, ctx: NodeContext) -> list[tuple[str, Any]]:
    """``AvgPool2d``, or ``SumPool2d`` for sum pooling (``divisor_override=1``); NIR's padding counts
    the zeros, as PyTorch's default ``count_include_pad=True`` does."""
    if layer.divisor_override not in (None, 1):
        _refuse(layer, ctx, f"divisor_override={layer.divisor_override} is neither an average (None) nor a sum (1)")
    if layer.ceil_mode:
        _refuse(layer, ctx, "ceil_mode=True sizes the last window in a way NIR's pooling nodes do not state")
    padding = np.broadcast_to(layer.padding, 2)
    if padding.any() and not layer.count_include_pad and layer.divisor_override is None:
        _refuse(layer, ctx, "count_include_pad=False with padding averages over fewer values than NIR's AvgPool2d")
    pool = ctx.nir.SumPool2d if layer.divisor_override == 1 else ctx.nir.AvgPool2d
    return [("", pool(kernel_size=np.broadcast_to(layer.kernel_size, 2).copy(),
                      stride=np.broadcast_to(layer.stride or layer.kernel_size, 2).copy(), padding=padding.copy()))]


@node(nn.MaxPool2d)
def write_maxpool(layer: Any, ctx: NodeContext) -> list[tuple[str, Any]]:
    return _refuse(layer, ctx, "NIR has no max pooling node (only SumPool2d and AvgPool2d)")


# -- the graph -----------------------------------------------------------------------------------------

def _concrete(dims: list, what: str) -> tuple[int, ...]:
    if not all(isinstance(d, int) for d in dims):
        raise InvalidValueError(f"NIR needs fixed sizes, but the {what} shape is {dims}: export a neuron with a fixed "
                         "feature_shape")
    return tuple(dims)


def _shapes(model: ExportModel) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Per-sample ``(input shape, output shape)`` of each layer, from one step on zeros."""
    features = _concrete(model.x_dims[1:], "input")
    net = getattr(model, "net", None)
    if not isinstance(net, SpikingSequential):  # a single neuron: its output has its input's shape
        return [(features, features)]
    x = torch.zeros((1, *features), dtype=model.torch_dtype)
    with torch.no_grad():
        outs, _ = net.step_with_layer_outputs(x, net.initial_state(1, x.dtype))
    return [(tuple(a.shape[1:]), tuple(b.shape[1:])) for a, b in zip([x, *outs[:-1]], outs, strict=True)]


def graph(model: ExportModel, rule: Discretisation) -> Any:
    """The model as a ``nir.NIRGraph`` (``input -> layer nodes -> output``), ``dt`` and the method in
    its metadata. Raises ``ValueError`` naming the layer for anything NIR cannot express."""
    nir = import_nir()
    dtype = model.numpy_dtype
    nodes: dict[str, Any] = {}
    chain = ["input"]
    shapes = _shapes(model)
    for i, ((layer, _), (in_shape, out_shape)) in enumerate(zip(model.layers, shapes, strict=True)):
        name = str(i)
        source = getattr(layer, "nir_source", None)
        if isinstance(source, NirSource) and source.describes(layer, rule):
            written = [(suffix, copy.deepcopy(n)) for suffix, n in source.nodes]
        else:
            ctx = NodeContext(nir, rule, dtype, name, in_shape, out_shape)
            written = NODES.emitter_for(layer)(layer, ctx)
        for suffix, n in written:
            nodes[name + suffix] = n
            chain.append(name + suffix)
    first_in, last_out = shapes[0][0], shapes[-1][1]
    nodes = {"input": nir.Input(input_type=np.array(first_in)), **nodes,
             "output": nir.Output(output_type=np.array(last_out))}
    chain.append("output")
    result = nir.NIRGraph(nodes=nodes, edges=list(zip(chain[:-1], chain[1:], strict=True)), type_check=False)
    result.metadata = rule.metadata()
    return result


def _writer(nir_graph: Any, file: str) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        import_nir().write(folder / file, nir_graph)

    return write


def artifacts(model: ExportModel, options: ExportOptions) -> list[Artifact]:
    """``<prefix>.nir``: the whole model for ``nir.read``, at ``dt = DEFAULT_DT`` with the Euler rule."""
    nir_graph = graph(model, Discretisation(DEFAULT_DT, "euler"))
    entry = {"name": "nir_graph", "file": f"{model.prefix}.nir", "format": "nir", "kind": "sequence",
             "method": "nir.read", **model_io(model, True)}
    return [Artifact(entry, _writer(nir_graph, entry["file"]))]  # type: ignore[arg-type]
