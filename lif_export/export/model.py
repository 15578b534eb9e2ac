"""What the export pipeline consumes: a model lowered to layers with named, explicit state.

A single neuron is a one-layer network. :class:`NeuronModel` lowers a :class:`NeuronSpec` to the
one layer ``[LIFCell]`` with the state ``v``; :class:`NetworkModel` lowers a
:class:`~lif_export.network.SpikingSequential` (a copy of it) to its layers with the states
``state.<layer>.<variable>``. Every format emitter (:mod:`lif_export.export.formats`), the golden
vectors and the manifest read only this interface:

* ``layers``: ``(layer, indices of its states)`` in order, the modules the per-layer emitters see;
* ``states``: every state tensor's public names (input, next, trace), dims and initial value;
* ``x_dims``, ``output``, ``out_dims``: the input and the primary output (``spike`` or ``out``);
* ``reference(x, states)``: eager PyTorch's outputs, the golden vectors' expectation;
* ``scripted()``: the TorchScript modules of the model, with their calling convention.
"""

from __future__ import annotations

import copy
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..cases import Signature
from ..errors import InvalidTypeError, InvalidValueError
from ..network import SpikingSequential, StatefulNetwork
from ..network.protocol import StatefulLayer, Stateless
from .float_tier import check_float_layer, float_layers, fold_batch_norms, spike_outputs
from .manifest import EXACTNESS, StateEntry
from .spec import DTYPES, DYNAMIC_FEATURES, NeuronSpec

Dim = int | str

@dataclass(frozen=True)
class StateTensor:
    """One state tensor: its input name, the output that feeds it back, its per-step trace."""

    input: str
    output: str
    trace: str
    dims: list[Dim]  # [batch, *per-sample shape]
    initial_value: float = 0.0

    def manifest_entry(self) -> StateEntry:
        return {"input": self.input, "output": self.output, "trace": self.trace, "initial_value": self.initial_value}


@dataclass(frozen=True)
class Scripted:
    """A TorchScript artifact of a model: how to build it and how a host calls it."""

    name: str  # manifest artifact name
    stem: str  # file name without ".pt"
    kind: str  # "step", "sequence", "stateful_neuron", "stateful_network"
    method: str
    convention: str  # "flat" or "state_list"
    build: Callable[[], nn.Module]
    extra: dict = field(default_factory=dict)


class ExportModel(ABC):
    """A model ready for the emitters (see the module docstring)."""

    prefix: str  # file stem: "lif" -> lif_step.onnx, ...
    dtype: str
    description_key: str  # "neuron" or "network": the manifest block describing the model
    description: dict
    x_dims: list[Dim]
    output: str
    out_dims: list[Dim]
    states: list[StateTensor]
    layers: list[tuple[nn.Module, list[int]]]
    #: "exact": every layer bit-identical on every backend; "float": ordinary float layers too
    #: (:mod:`.float_tier`, docs/networks.md "Float tier").
    exactness: str = "exact"

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype][0]

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(DTYPES[self.dtype][1])

    @property
    def out_like_state(self) -> int | None:
        """The state whose shape the output has (the last layer's first state), if any."""
        layer, indices = self.layers[-1]
        return indices[0] if indices else None

    def state_shape(self, state: StateTensor, batch: int) -> tuple[int, ...]:
        return Signature.concrete(state.dims, batch)

    @property
    def is_single_neuron(self) -> bool:
        return self.description_key == "neuron"

    def signature(self) -> Signature:
        """Names, shapes and dtype of the model's inputs, for the input cases (:mod:`lif_export.cases`)."""
        return Signature(self.dtype, list(self.x_dims), {s.input: list(s.dims) for s in self.states},
                         self.is_single_neuron, self.input_parameters())

    def input_parameters(self) -> dict:
        """Neuron parameters that aim generated inputs; empty: the default neuron's."""
        return {}

    @abstractmethod
    def reference(self, x: np.ndarray, states: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Eager PyTorch's ``{output: [T, ...], <state>_next: final, <state>_trace: [T, ...]}``."""

    @abstractmethod
    def scripted(self) -> list[Scripted]:
        """The TorchScript artifacts of the model."""


def feature_dims(feature_shape: tuple[Dim, ...]) -> list[Dim]:
    """Per-sample dims with dynamic ones named (``neurons``, or ``neurons_<i>`` for several)."""
    return [d if isinstance(d, int) else (DYNAMIC_FEATURES if len(feature_shape) == 1 else f"{DYNAMIC_FEATURES}_{i}")
            for i, d in enumerate(feature_shape)]


class NeuronModel(ExportModel):
    """A single LIF neuron (:class:`NeuronSpec`) as a one-layer network: ``(x, v) -> (spike, v_next)``."""

    prefix = "lif"
    description_key = "neuron"
    output = "spike"

    def __init__(self, spec: NeuronSpec) -> None:
        self.spec = spec
        self.dtype = spec.dtype
        self.description = spec.to_json()
        self.x_dims = ["batch", *feature_dims(spec.feature_shape)]
        self.out_dims = list(self.x_dims)
        self.states = [StateTensor("v", "v_next", "v_trace", list(self.x_dims))]
        self.layers = [(spec.cell(), [0])]

    def input_parameters(self) -> dict:
        return self.spec.numpy_params()

    def reference(self, x: np.ndarray, states: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        spike, v_next, v_trace = self.spec.reference(torch.from_numpy(x), torch.from_numpy(states["v"]))
        return {"spike": spike.numpy(), "v_next": v_next.numpy(), "v_trace": v_trace.numpy()}

    def scripted(self) -> list[Scripted]:
        spec = self.spec
        return [
            Scripted("torchscript_step", "lif_step", "step", "forward", "flat", spec.cell),
            Scripted("torchscript_sequence", "lif_sequence", "sequence", "forward_trace", "flat", spec.sequence),
            Scripted("torchscript_neuron", "lif_neuron", "stateful_neuron", "step", "flat", spec.neuron, {
                "extra_methods": {
                    "forward": {"inputs": ["input_current"], "outputs": ["spike"],
                                "hidden_state": ["potential", "spike"]},
                    "reset_state": {"inputs": [], "outputs": []},
                }}),
        ]


class NetworkModel(ExportModel):
    """A :class:`SpikingSequential` for inputs ``[batch, *feature_shape]``, in ``dtype``.

    The network is copied (and the copy cast and put in eval mode): the caller's network is
    never changed by an export.

    ``exactness``: ``None`` exports a network with ordinary ``Linear``, ``Conv2d``, ``AvgPool2d`` or
    ``BatchNorm`` layers in the float tier and any other in the exact tier; ``"exact"`` refuses such
    layers (naming the first); ``"float"`` marks the export float tier whatever its layers. In the
    float tier each BatchNorm is folded into the ``Linear`` / ``Conv2d`` before it (its place taken by
    an ``nn.Identity``, so every layer keeps its index and state names).
    """

    prefix = "network"
    description_key = "network"
    output = "out"

    def __init__(self, net: SpikingSequential, feature_shape: tuple[int, ...], dtype: str = "float32",
                 exactness: str | None = None) -> None:
        if not isinstance(net, SpikingSequential):
            raise InvalidTypeError(f"net must be a SpikingSequential, got {type(net).__name__}")
        if dtype not in DTYPES:
            raise InvalidValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
        if exactness is not None and exactness not in EXACTNESS:
            raise InvalidValueError(f"exactness must be None (decided by the layers) or one of {list(EXACTNESS)}, "
                                    f"got {exactness!r}")
        features = tuple(feature_shape)
        if not features or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in features):
            raise InvalidValueError(
                f"feature_shape must be positive integers (the network's input shape), got {features!r}")
        self.dtype = dtype
        self.net = copy.deepcopy(net).to(self.torch_dtype).eval()
        try:
            with torch.no_grad():
                outputs, _ = self.net.step_with_layer_outputs(torch.zeros(1, *features, dtype=self.torch_dtype),
                                                              self.net.initial_state(1, self.torch_dtype))
        except RuntimeError as err:
            raise InvalidValueError(f"feature_shape {features} does not fit the network: {err}") from None
        probe = outputs[-1]
        self.folded = self._float_tier(exactness, outputs)
        self.x_dims = ["batch", *features]
        self.out_dims = ["batch", *probe.shape[1:]]
        self.states = [StateTensor(n, f"{n}_next", f"{n}_trace", ["batch", *self._layer_shape(n)])
                       for n in self.net.state_names]
        self.layers = []
        offset = 0
        for layer in self.net.layers:
            count = len(layer.state_names)  # type: ignore[arg-type]
            self.layers.append((layer.module if isinstance(layer, Stateless) else layer,
                                list(range(offset, offset + count))))
            offset += count
        self.description = self._describe()

    def _float_tier(self, exactness: str | None, outputs: list[torch.Tensor]) -> dict[int, str]:
        """Set :attr:`exactness`; in the float tier check the float layers and fold the BatchNorms
        (``{index: type}`` of the folded ones is returned)."""
        found = float_layers(self.net)
        if exactness == "exact" and found:
            index, kind = found[0]
            raise InvalidTypeError(
                f"cannot export {kind} (layer {index}) in the exact tier: only the exact layers (ExactLinear, "
                "ExactConv2d, ...) are bit-identical on every backend; lif_export.network.to_exact converts "
                "Linear and Conv2d to them, or export in the float tier (exactness=None or 'float')")
        self.exactness = exactness or ("float" if found else "exact")
        if self.exactness == "exact":
            return {}
        for index, _ in found:
            check_float_layer(index, getattr(self.net.layers[index], "module", self.net.layers[index]))
        return fold_batch_norms(self.net, outputs)

    def _layer_shape(self, state_name: str) -> list[int]:
        return list(self.net.layers[int(state_name.split(".")[1])].shape)  # type: ignore[arg-type]

    def _describe(self) -> dict:
        layers = []
        for i, layer in enumerate(self.net.layers):
            inner = getattr(layer, "module", layer)
            entry = {"index": i, "type": type(inner).__name__, "state": list(layer.state_names)}  # type: ignore[arg-type]
            if isinstance(layer, StatefulLayer):
                entry["shape"] = list(layer.shape)
                entry["repr"] = layer.extra_repr()
            if i in self.folded:
                entry.update(type=self.folded[i], folded_into=i - 1)
            layers.append(entry)
        description = {"layers": layers, "state_names": list(self.net.state_names), "dtype": self.dtype}
        if self.exactness == "float":
            description["spike_outputs"] = spike_outputs(self.net, self.output,
                                                         [(s.input, s.output, s.trace) for s in self.states])
        return description

    def reference(self, x: np.ndarray, states: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out, final, traces = self.net.forward_trace(torch.from_numpy(x),
                                                        [torch.from_numpy(states[s.input]) for s in self.states])
        return {"out": out.numpy(),
                **{s.output: f.numpy() for s, f in zip(self.states, final, strict=True)},
                **{s.trace: t.numpy() for s, t in zip(self.states, traces, strict=True)}}

    def scripted(self) -> list[Scripted]:
        scripted_net = functools.cache(lambda: torch.jit.script(self.net))  # step and sequence: one module
        return [
            Scripted("torchscript_step", "network_step", "step", "step", "state_list", scripted_net),
            Scripted("torchscript_sequence", "network_sequence", "sequence", "forward_trace", "state_list",
                     scripted_net),
            Scripted("torchscript_network", "network_stateful", "stateful_network", "step", "state_list",
                     lambda: StatefulNetwork(self.net)),
        ]


def as_model(model: ExportModel | NeuronSpec) -> ExportModel:
    """A :class:`NeuronSpec` becomes its one-layer :class:`NeuronModel`; a model passes through."""
    return NeuronModel(model) if isinstance(model, NeuronSpec) else model
