"""NIR in and out: :func:`to_nir` writes a network as a NIR graph, :func:`from_nir` reads one back.

The discretisation (``dt`` and the method, Euler or exact exponential) is stated once in
:class:`lif_export.export.formats.nir.Discretisation` and derived in ``docs/nir.md``. A network
written by :func:`to_nir` reads back to the same layers, so its forward gives the same bits; a
graph from snnTorch, Norse or any other NIR writer is read node by node, its ordinary weights
rounded to the exact grid (:func:`lif_export.network.to_exact`) with the rounding reported, or
kept as ordinary layers (``exact=False``: eager PyTorch and TorchScript only).

Example::

    import nir
    from lif_export.nir import from_nir, to_nir

    nir.write("net.nir", to_nir(net, dt=1e-3))
    net_again = from_nir("net.nir")            # dt and the method from the graph's metadata
    snn_net = from_nir("snntorch.nir", dt=1e-4)  # snnTorch exports at dt = 1e-4 s
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .convert.chain import LayerChain
from .errors import InvalidValueError
from .export.formats.nir import UNIT_TOLERANCE, Discretisation, graph, import_nir, remember_source
from .export.model import NetworkModel
from .network import (
    ExactLinear,
    LeakyIntegratorLayer,
    LIFLayer,
    RecurrentLIFLayer,
    SpikingSequential,
    SynapticLIFLayer,
)
from .network.convert import exact_layer
from .network.protocol import StatefulLayer, Stateless

__all__ = ["from_nir", "to_nir"]


# -- writing ---------------------------------------------------------------------------------------------

def _feature_shape(net: SpikingSequential) -> tuple[int, ...]:
    for layer in net.layers:
        inner = layer.module if isinstance(layer, Stateless) else layer
        if isinstance(inner, (nn.Identity, nn.Dropout)):
            continue
        if isinstance(inner, (nn.Linear, ExactLinear)):
            return (inner.in_features,)
        if isinstance(inner, StatefulLayer):
            return tuple(inner.shape)
        break
    raise InvalidValueError("cannot tell the network's input shape from its first layer: pass feature_shape")


def to_nir(net: nn.Module, dt: float, method: str = "euler", feature_shape: tuple[int, ...] | None = None,
           dtype: str = "float32") -> Any:
    """``net`` as a ``nir.NIRGraph`` at the time step ``dt`` (seconds), ``dt`` and ``method`` in its metadata.

    Args:
        net: a :class:`~lif_export.network.SpikingSequential` (or a single layer); not changed.
        dt: the time step one call of ``step`` stands for, in seconds.
        method: ``"euler"`` (``beta = 1 - dt/tau``) or ``"exp"`` (``beta = exp(-dt/tau)``).
        feature_shape: the per-sample input shape; inferred from a first ``Linear`` or neuron layer.
        dtype: ``"float32"`` or ``"float64"``, the dtype of the parameters written.

    Raises ``ValueError`` naming the layer for what NIR cannot express (``docs/nir.md``).
    """
    if not isinstance(net, SpikingSequential):
        net = SpikingSequential(net)
    features = tuple(feature_shape) if feature_shape is not None else _feature_shape(net)
    return graph(NetworkModel(net, features, dtype), Discretisation(dt, method))


# -- reading ---------------------------------------------------------------------------------------------

def _array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _uniform(values: np.ndarray) -> float | torch.Tensor:
    """One value for all neurons as a float, else the per-neuron tensor (float32)."""
    flat = values.ravel()
    if flat.size and np.all(flat == flat[0]):
        return float(flat[0])
    return torch.from_numpy(values.astype(np.float32))


def _decoded(metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, dict):
        return {}
    out = {}
    for k, v in metadata.items():
        v = v.decode() if isinstance(v, bytes) else v
        out[k] = v.item() if isinstance(v, np.generic) or (isinstance(v, np.ndarray) and v.ndim == 0) else v
    return out


def _chain(nir_graph: Any, nir: Any, where: str) -> tuple[list[tuple[str, Any]], dict[str, tuple[str, Any]]]:
    """The graph's nodes from its input to its output, in order, and its recurrent edges
    ``{neuron node: (weight node name, weight node)}`` (a neuron and a ``Linear``/``Affine`` that
    only feed each other). Anything but such a chain raises, naming the node."""
    nodes, edges = nir_graph.nodes, list(dict.fromkeys(tuple(e) for e in nir_graph.edges))
    recurrent: dict[str, tuple[str, Any]] = {}
    for a, b in edges:
        if (b, a) in edges and isinstance(nodes.get(a), (nir.LIF, nir.CubaLIF)) and isinstance(
                nodes.get(b), (nir.Linear, nir.Affine)) and [e for e in edges if b in e] == [
                e for e in edges if e in ((a, b), (b, a))]:
            recurrent[a] = (b, nodes[b])
    loop_edges = {e for a, (b, _) in recurrent.items() for e in ((a, b), (b, a))}
    succ: dict[str, list[str]] = {}
    pred: dict[str, list[str]] = {}
    for a, b in edges:
        if (a, b) not in loop_edges:
            succ.setdefault(a, []).append(b)
            pred.setdefault(b, []).append(a)
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise InvalidValueError(f"{where}: a graph with one Input node is read, got {len(inputs)} ({inputs})")
    order, name = [], inputs[0]
    while not isinstance(nodes[name], nir.Output):
        after = succ.get(name, [])
        if len(after) != 1:
            raise InvalidValueError(f"{where}: only chains are read (one path from input to output, recurrent "
                             f"neuron-weight loops aside); node {name!r} feeds {after or 'nothing'}")
        name = after[0]
        if name not in nodes:
            raise InvalidValueError(f"{where}: an edge leads to {name!r}, which is not a node of the graph")
        if len(pred[name]) != 1:
            raise InvalidValueError(f"{where}: only chains are read; node {name!r} has inputs {pred[name]}")
        if not isinstance(nodes[name], nir.Output):
            order.append((name, nodes[name]))
    unread = set(nodes) - {n for n, _ in order} - {b for b, _ in recurrent.values()} - set(inputs) - {name}
    if unread:
        raise InvalidValueError(f"{where}: nodes {sorted(unread)} are not on the path from input to output")
    return order, recurrent


class _Reader(LayerChain):
    """Turns a chain of NIR nodes into layers, folding input scales into the weights before them."""

    def __init__(self, nir: Any, rule: Discretisation, norse_export_dt: float | None,
                 report: Callable[[str], None]) -> None:
        super().__init__(None, None, torch.float64)  # weights stay float64 until every scale is folded
        self.nir, self.rule, self.report = nir, rule, report
        self.norse_export_dt = norse_export_dt
        self.names: list[str] = []  # the node each layer came from
        self.open: int | None = None  # index of a just-read linear layer that can still absorb a scale
        self.fusable: int | None = None  # index of a just-read LI/I/CubaLI a Threshold can turn into a neuron

    # signal bookkeeping --------------------------------------------------------------------------

    def append(self, name: str, layer: nn.Module, foldable: bool = False) -> None:
        self.add(layer)
        self.names.append(name)
        self.open = len(self.layers) - 1 if foldable else None
        self.fusable = None

    def neuron_shape(self, name: str, *params: np.ndarray) -> tuple[int, ...]:
        shaped = [p.shape for p in params if p.ndim > 0]
        shape = self.shape if self.shape is not None else (shaped[0] if shaped else None)
        if shape is None:
            raise InvalidValueError(f"NIR node {name!r}: its size is unknown (scalar parameters and no input shape)")
        for s in shaped:
            if s != tuple(shape):
                raise InvalidValueError(
                    f"NIR node {name!r}: parameters of shape {s} do not match its input {tuple(shape)}")
        return tuple(shape)

    def remember(self, layer: nn.Module, nodes: list[tuple[str, Any]]) -> None:
        """Keep the nodes a layer was read from (for writing them back), unless their tau was corrected."""
        if self.norse_export_dt is None:
            remember_source(layer, nodes, self.rule)

    def tau(self, value: Any) -> np.ndarray:
        tau = _array(value)
        return tau / self.norse_export_dt if self.norse_export_dt is not None else tau

    def fold(self, name: str, scale: np.ndarray, bias: np.ndarray, shape: tuple[int, ...]) -> bool:
        """Apply ``x -> scale * x + bias`` (per neuron) to the input of node ``name`` by folding it into
        the linear layer just before; returns whether anything was folded."""
        scale, bias = np.broadcast_to(scale, shape), np.broadcast_to(bias, shape)
        unit = np.abs(scale - 1.0) <= UNIT_TOLERANCE
        if np.all(unit) and not np.any(bias):
            return False
        scale = np.where(unit, 1.0, scale)
        if self.open is None:
            raise InvalidValueError(f"NIR node {name!r}: its input is scaled by {_summary(scale)} and shifted by "
                             f"{_summary(bias)} (r, w_in, v_leak and tau at dt = {self.rule.dt:g}), and there is no "
                             "Affine, Linear or Conv2d right before it to fold that into")
        layer: Any = self.layers[self.open]
        with torch.no_grad():
            if isinstance(layer, nn.Conv2d):
                per_channel = scale.reshape(scale.shape[0], -1), bias.reshape(bias.shape[0], -1)
                if not all(np.all(p == p[:, :1]) for p in per_channel):
                    raise InvalidValueError(
                        f"NIR node {name!r}: its input scale varies within a channel, so it cannot be "
                                     f"folded into the convolution {self.names[self.open]!r}")
                scale, bias = per_channel[0][:, 0], per_channel[1][:, 0]
            s = torch.from_numpy(scale.reshape(-1).copy())
            layer.weight.mul_(s.reshape(-1, *([1] * (layer.weight.dim() - 1))))
            b = torch.from_numpy(bias.reshape(-1).copy())
            if layer.bias is None:
                layer.bias = nn.Parameter(b.clone())
            else:
                layer.bias.mul_(s).add_(b)
        self.report(f"NIR node {name!r}: input scale {_summary(scale)} and shift {_summary(bias)} folded into "
                    f"{self.names[self.open]!r}")
        return True

    # nodes ---------------------------------------------------------------------------------------

    def read(self, name: str, node: Any, recurrent: tuple[str, Any] | None) -> None:
        nir = self.nir
        if recurrent is not None:
            self.recurrent_lif(name, node, *recurrent)
        elif isinstance(node, (nir.Affine, nir.Linear)):
            weight = _array(node.weight)
            if weight.ndim != 2:
                raise InvalidValueError(f"NIR node {name!r}: only 2-D weights are read, got shape {weight.shape}")
            bias = getattr(node, "bias", None)
            layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, dtype=torch.float64)
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(weight))
                if bias is not None:
                    layer.bias.copy_(torch.from_numpy(np.broadcast_to(_array(bias), (weight.shape[0],)).copy()))
            if self.shape is None:
                self.shape = (weight.shape[1],)
            self.append(name, layer, foldable=True)
        elif isinstance(node, nir.Conv2d):
            self.conv2d(name, node)
        elif isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
            self.append(name, nn.AvgPool2d(tuple(np.broadcast_to(node.kernel_size, 2).tolist()),
                                           tuple(np.broadcast_to(node.stride, 2).tolist()),
                                           tuple(np.broadcast_to(node.padding, 2).tolist()),
                                           divisor_override=1 if isinstance(node, nir.SumPool2d) else None))
        elif isinstance(node, nir.Flatten):
            start, end = int(node.start_dim), int(node.end_dim)
            self.append(name, nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end))
        elif isinstance(node, nir.Scale):
            scale = _array(node.scale)
            self.fold(name, scale, np.zeros_like(scale), self.neuron_shape(name, scale))
        elif isinstance(node, nir.LIF):
            self.lif(name, node, *self.leak(name, node.tau, node.r, node.v_leak, node.v_threshold), node.v_threshold,
                     node.v_reset)
        elif isinstance(node, nir.IF):
            r = _array(node.r)
            self.lif(name, node, np.ones_like(r), self.rule.dt * r, np.zeros_like(r), node.v_threshold, node.v_reset)
        elif isinstance(node, (nir.LI, nir.I)):
            self.leaky(name, node)
        elif isinstance(node, (nir.CubaLIF, nir.CubaLI)):
            self.synaptic(name, node)
        elif isinstance(node, nir.Threshold):
            self.threshold(name, node)
        elif isinstance(node, nir.NIRGraph):
            order, inner = _chain(node, nir, f"NIR subgraph {name!r}")
            for sub_name, sub in order:
                loop = inner.get(sub_name)
                self.read(f"{name}.{sub_name}", sub, None if loop is None else (f"{name}.{loop[0]}", loop[1]))
        elif isinstance(node, (nir.Input, nir.Output)):
            return
        else:
            raise InvalidValueError(
                f"NIR node {name!r}: lif_export has no layer for NIR's {type(node).__name__} (it reads Affine, "
                "Linear, Conv2d, AvgPool2d, SumPool2d, Flatten, Scale, LIF, IF, LI, I, CubaLIF, CubaLI, Threshold and "
                "recurrent LIF subgraphs)")

    def leak(self, name: str, tau: Any, r: Any, v_leak: Any, *sized: Any,
             what: str = "tau") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(beta, input scale, input shift)`` of a leaky node at this step."""
        tau = self.tau(tau)
        shape = self.neuron_shape(name, tau, _array(r), _array(v_leak), *(_array(s) for s in sized))
        tau = np.broadcast_to(tau, shape)
        beta = self.rule.decay(tau, name, what)
        gain = self.rule.gain(tau)
        return beta, gain * _array(r), gain * _array(v_leak)

    def lif(self, name: str, node: Any, beta: np.ndarray, scale: np.ndarray, shift: np.ndarray, threshold: Any,
            v_reset: Any) -> None:
        shape = self.neuron_shape(name, beta, _array(threshold))
        folded = self.fold(name, scale, shift, shape)
        layer = _named(name, lambda: LIFLayer(
            shape, beta=_uniform(np.broadcast_to(beta, shape)),
            threshold=_uniform(np.broadcast_to(_array(threshold), shape)),
            v_reset=_uniform(np.broadcast_to(_array(v_reset), shape))))
        if not folded:
            self.remember(layer, [("", node)])
        self.append(name, layer)

    def leaky(self, name: str, node: Any) -> None:
        if isinstance(node, self.nir.I):
            r = _array(node.r)
            beta, scale, shift = np.ones_like(r), self.rule.dt * r, np.zeros_like(r)
        else:
            beta, scale, shift = self.leak(name, node.tau, node.r, node.v_leak)
        shape = self.neuron_shape(name, beta)
        folded = self.fold(name, scale, shift, shape)
        layer = _named(name, lambda: LeakyIntegratorLayer(shape, beta=_uniform(np.broadcast_to(beta, shape))))
        if not folded:
            self.remember(layer, [("", node)])
        self.append(name, layer)
        self.fusable = len(self.layers) - 1

    def synaptic(self, name: str, node: Any) -> None:
        """``CubaLIF`` -> :class:`SynapticLIFLayer`: the current first, then the potential (as snnTorch).
        Both input scales multiply the input (the current is internal state, so the membrane's scale
        can move in front of it); a leak potential of the membrane has no counterpart."""
        nir = self.nir
        alpha, syn_scale, _ = self.leak(name, node.tau_syn, node.w_in, 0.0, what="tau_syn")
        beta, mem_scale, shift = self.leak(name, node.tau_mem, node.r, node.v_leak, what="tau_mem")
        if np.any(shift):
            raise InvalidValueError(
                f"NIR node {name!r}: v_leak = {_summary(_array(node.v_leak))} != 0 has no counterpart "
                             "in SynapticLIFLayer (a constant drive of the membrane behind the synaptic current)")
        shape = self.neuron_shape(name, alpha, beta)
        folded = self.fold(name, syn_scale * mem_scale, np.zeros(shape), shape)
        params: dict[str, Any] = {"alpha": _uniform(np.broadcast_to(alpha, shape)),
                                  "beta": _uniform(np.broadcast_to(beta, shape))}
        if isinstance(node, nir.CubaLI):
            first = _named(name, lambda: LeakyIntegratorLayer(shape, beta=params["alpha"]))
            second = _named(name, lambda: LeakyIntegratorLayer(shape, beta=params["beta"]))
            self.append(f"{name}.current", first)
            self.append(name, second)  # written back as two LI nodes: one CubaLI does not describe either layer
            self.fusable = len(self.layers) - 1
            return
        layer = _named(name, lambda: SynapticLIFLayer(
            shape, **params, threshold=_uniform(np.broadcast_to(_array(node.v_threshold), shape)),
            v_reset=_uniform(np.broadcast_to(_array(node.v_reset), shape))))
        if not folded:
            self.remember(layer, [("", node)])
        self.append(name, layer)

    def threshold(self, name: str, node: Any) -> None:
        """After an ``LI``/``I``/``CubaLI`` it becomes that neuron's firing (no reset); alone, a
        ``LIFLayer(beta=0, reset="none")``, the same spikes while the inputs are finite (docs/nir.md)."""
        threshold = _array(node.threshold)
        if self.fusable is None:
            shape = self.neuron_shape(name, threshold)
            self.append(name, _named(name, lambda: LIFLayer(shape, beta=0.0, reset="none",
                                                         threshold=_uniform(np.broadcast_to(threshold, shape)))))
            return
        leaky: Any = self.layers[self.fusable]
        shape = tuple(leaky.shape)
        kept: dict[str, Any] = {"threshold": _uniform(np.broadcast_to(threshold, shape)), "reset": "none"}
        source = getattr(leaky, "nir_source", None)
        if self.fusable > 0 and self.names[self.fusable - 1] == f"{self.names[self.fusable]}.current":
            current: Any = self.layers[self.fusable - 1]
            layer = _named(name, lambda: SynapticLIFLayer(shape, alpha=current.beta.clone(), beta=leaky.beta.clone(),
                                                          **kept))
            del self.layers[self.fusable - 1], self.names[self.fusable - 1]
        else:
            layer = _named(name, lambda: LIFLayer(shape, beta=leaky.beta.clone(), **kept))
        if source is not None:
            self.remember(layer, [*source.nodes, ("_threshold", node)])
        self.layers[-1], self.names[-1], self.fusable = layer, self.names[-1], None

    def recurrent_lif(self, name: str, node: Any, w_name: str, w_node: Any) -> None:
        if not isinstance(node, self.nir.LIF):
            raise InvalidValueError(
                f"NIR node {name!r}: a recurrent {type(node).__name__} has no lif_export layer (only a "
                             "recurrent LIF: RecurrentLIFLayer)")
        beta, scale, shift = self.leak(name, node.tau, node.r, node.v_leak, node.v_threshold)
        shape = self.neuron_shape(name, beta)
        if len(shape) != 1:
            raise InvalidValueError(f"NIR node {name!r}: a recurrent LIF must have a 1-D shape, got {shape}")
        scale, shift = np.broadcast_to(scale, shape), np.broadcast_to(shift, shape)
        w_bias = _array(getattr(w_node, "bias", 0.0))
        self.fold(name, scale, shift + scale * w_bias, shape)
        layer = _named(name, lambda: RecurrentLIFLayer(
            shape[0], beta=_uniform(beta), threshold=_uniform(np.broadcast_to(_array(node.v_threshold), shape)),
            v_reset=_uniform(np.broadcast_to(_array(node.v_reset), shape))))
        weight = np.where(np.abs(scale - 1.0) <= UNIT_TOLERANCE, 1.0, scale)[:, None] * _array(w_node.weight)
        linear = nn.Linear(shape[0], shape[0], bias=False, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weight))
        exact, rounding = exact_layer(linear, name=f"NIR node {w_name!r}")
        layer.recurrent = exact.float()
        self.report(rounding.line())
        self.append(name, layer)

    def conv2d(self, name: str, node: Any) -> None:
        weight = _array(node.weight)
        if weight.ndim != 4:
            raise InvalidValueError(f"NIR node {name!r}: Conv2d weights must be [out, in, kh, kw], got {weight.shape}")
        padding = node.padding if isinstance(node.padding, str) else tuple(np.broadcast_to(node.padding, 2).tolist())
        layer = nn.Conv2d(weight.shape[1] * int(node.groups), weight.shape[0], tuple(weight.shape[2:]),
                          stride=tuple(np.broadcast_to(node.stride, 2).tolist()), padding=padding,
                          dilation=tuple(np.broadcast_to(node.dilation, 2).tolist()), groups=int(node.groups),
                          dtype=torch.float64)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(weight))
            assert layer.bias is not None
            layer.bias.copy_(torch.from_numpy(np.broadcast_to(_array(node.bias), (weight.shape[0],)).copy()))
        if self.shape is None and node.input_shape is not None:
            self.shape = (weight.shape[1] * int(node.groups), *np.broadcast_to(node.input_shape, 2).tolist())
        self.append(name, layer, foldable=True)


def _summary(values: np.ndarray) -> str:
    values = np.asarray(values)
    lo, hi = float(values.min()), float(values.max())
    return f"{lo:.6g}" if lo == hi else f"{lo:.6g}..{hi:.6g}"


def _named(name: str, build: Callable[[], nn.Module]) -> Any:
    """Build a layer; a parameter out of range raises naming the NIR node."""
    try:
        return build()
    except ValueError as err:
        raise InvalidValueError(f"NIR node {name!r}: {err}") from None


def from_nir(nir_graph: Any, dt: float | None = None, method: str | None = None, *, exact: bool = True,
             norse_export_dt: float | None = None, report: Callable[[str], None] | None = print) -> SpikingSequential:
    """A NIR graph (or a ``.nir`` file) as a :class:`~lif_export.network.SpikingSequential`.

    Args:
        nir_graph: a ``nir.NIRGraph`` or the path of a ``.nir`` file.
        dt: the time step in seconds; default the graph's ``dt`` metadata (graphs from :func:`to_nir`).
            snnTorch writes its graphs for ``dt = 1e-4`` s.
        method: ``"euler"`` or ``"exp"``; default the graph's metadata, else ``"euler"``.
        exact: round ``Affine``/``Linear``/``Conv2d`` weights to the exact grid (``ExactLinear``/
            ``ExactConv2d``, exportable; the rounding is reported); ``False`` keeps ordinary
            ``nn.Linear``/``nn.Conv2d`` (float32) with the weights as written.
        norse_export_dt: for graphs written by Norse's ``to_nir``, which stores ``tau = dt/tau_mem_inv``:
            the ``dt`` it was given (Norse's default ``1e-3``); every tau is divided by it.
        report: called with one line per weight rounding and per input scale folded into weights.

    Input scales (``r``, ``w_in``, ``Scale`` nodes) and leak potentials (``v_leak``) are folded into
    the weights and bias of the ``Affine``/``Linear``/``Conv2d`` right before the node. Raises
    ``ValueError`` naming the node for anything lif_export has no layer for.
    """
    nir = import_nir()
    if isinstance(nir_graph, (str, Path)):
        nir_graph = nir.read(str(nir_graph))
    meta = _decoded(getattr(nir_graph, "metadata", None))
    if dt is None:
        if "dt" not in meta:
            raise InvalidValueError(
                "dt is needed: the graph has no 'dt' metadata (graphs from snnTorch are written for "
                             "dt = 1e-4 s)")
        dt = float(meta["dt"])
    rule = Discretisation(dt, method or str(meta.get("discretisation", "euler")))
    if norse_export_dt is not None:
        Discretisation(norse_export_dt)  # the same check as dt
    reader = _Reader(nir, rule, norse_export_dt, report or (lambda line: None))
    order, recurrent = _chain(nir_graph, nir, "NIR graph")
    inputs = [n for n in nir_graph.nodes.values() if isinstance(n, nir.Input)]
    shape = inputs[0].input_type.get("input") if inputs and isinstance(inputs[0].input_type, dict) else None
    if shape is not None and np.size(shape) > 0:
        reader.shape = tuple(int(d) for d in np.asarray(shape).ravel())
    for name, node in order:
        reader.read(name, node, recurrent.get(name))
    if not reader.layers:
        raise InvalidValueError("the NIR graph has no node between its input and output")
    layers = []
    for name, layer in zip(reader.names, reader.layers, strict=True):
        if isinstance(layer, (nn.Linear, nn.Conv2d)) and exact:
            layer, rounding = exact_layer(layer, name=f"NIR node {name!r}")
            if report is not None:
                report(rounding.line())
        layers.append(layer.to(torch.float32))
    return SpikingSequential(*layers).eval()
