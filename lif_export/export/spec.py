"""What gets exported: a neuron's parameters, dtype and feature shape.

A :class:`NeuronSpec` is built from CLI flags, from a module (lifting its
hidden state into explicit inputs), or from a trained module's saved
``state_dict``. Everything downstream (graphs, manifest, vectors, the
conformance backends) reads only the spec, so a host can rebuild the eager
reference from the manifest alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import validation
from ..functional import broadcasts_to, lif_sequence
from ..modules import MIN_LEARNED_THRESHOLD, LIFCell, LIFNeuron, LIFSequence

#: Export dtypes: name -> (torch dtype, numpy dtype).
DTYPES: dict[str, tuple[torch.dtype, type]] = {
    "float32": (torch.float32, np.float32),
    "float64": (torch.float64, np.float64),
}

#: Name of the dynamic feature dimension when all parameters are scalars.
DYNAMIC_FEATURES = "neurons"


@dataclass(frozen=True)
class NeuronSpec:
    """A LIF neuron as exported.

    Attributes:
        threshold, beta, v_reset: float (shared) or nested lists (per-neuron,
            of the shape ``feature_shape`` or broadcastable to it).
        reset: ``"zero"``, ``"subtract"`` or ``"none"``.
        dtype: ``"float32"`` or ``"float64"``.
        feature_shape: the per-sample shape after the batch dimension; an
            ``int`` is fixed, the string ``"neurons"`` is dynamic (allowed
            only when every parameter is a scalar).
    """

    threshold: float | list = 1.0
    beta: float | list = 0.9
    v_reset: float | list = 0.0
    reset: str = "zero"
    dtype: str = "float32"
    feature_shape: tuple[int | str, ...] = field(default=(DYNAMIC_FEATURES,))

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        validation.check_reset(self.reset)
        tensors = self.parameter_tensors()
        validation.check_beta(tensors["beta"])
        validation.check_threshold(tensors["threshold"])
        validation.check_v_reset(tensors["v_reset"])
        validation.check_shapes_compatible(**tensors)
        shape = tuple(self.feature_shape)
        object.__setattr__(self, "feature_shape", shape)
        if not shape:
            raise ValueError("feature_shape must have at least one dimension, got ()")
        for dim in shape:
            if not (dim == DYNAMIC_FEATURES or (isinstance(dim, int) and not isinstance(dim, bool) and dim > 0)):
                raise ValueError(
                    f"feature_shape entries must be positive integers or {DYNAMIC_FEATURES!r}, got {shape!r}"
                )
        per_neuron = [k for k, t in tensors.items() if t.dim() > 0]
        if per_neuron:
            if DYNAMIC_FEATURES in shape:
                inferred = torch.broadcast_shapes(*(tensors[k].shape for k in per_neuron))
                object.__setattr__(self, "feature_shape", tuple(int(d) for d in inferred))
                shape = self.feature_shape
            for k in per_neuron:
                if not broadcasts_to(list(tensors[k].shape), list(shape)):
                    raise ValueError(
                        f"per-neuron {k} of shape {tuple(tensors[k].shape)} does not broadcast to "
                        f"feature_shape {shape}"
                    )

    # -- conversions -----------------------------------------------------

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype][0]

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(DTYPES[self.dtype][1])

    def parameter_tensors(self) -> dict[str, torch.Tensor]:
        """``beta``, ``threshold``, ``v_reset`` as tensors of the export dtype."""
        dtype = DTYPES[self.dtype][0]
        tensors = {
            name: validation.as_param_tensor(name, getattr(self, name), dtype)
            for name in ("beta", "threshold", "v_reset")
        }
        tensors["v_reset"] = validation.canonical_v_reset(tensors["v_reset"])
        return tensors

    def numpy_params(self) -> dict:
        """Parameters as NumPy arrays of the export dtype, plus ``"reset"`` (for input generators)."""
        params: dict = {k: t.numpy() for k, t in self.parameter_tensors().items()}
        params["reset"] = self.reset
        return params

    def module_kwargs(self) -> dict:
        t = self.parameter_tensors()
        return {"beta": t["beta"], "threshold": t["threshold"], "v_reset": t["v_reset"], "reset": self.reset,
                "dtype": self.torch_dtype}

    def cell(self) -> LIFCell:
        return LIFCell(**self.module_kwargs())

    def sequence(self) -> LIFSequence:
        return LIFSequence(**self.module_kwargs())

    def neuron(self) -> LIFNeuron:
        return LIFNeuron(**self.module_kwargs())

    def reference(self, x: torch.Tensor, v0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(spike, v_next, v_trace)`` by the plain functional loop, the definition every path is held to.

        (The modules' eager fast paths are held to it too, so they are not used here.)
        """
        p = self.parameter_tensors()
        with torch.no_grad():
            spike, v_next, v_trace = lif_sequence(x, v0, p["beta"], p["threshold"], p["v_reset"], self.reset,
                                                  return_trace=True)
        assert v_trace is not None
        return spike, v_next, v_trace

    def concrete_shape(self, batch: int, neurons: int = 8) -> tuple[int, ...]:
        """A concrete ``[batch, *features]`` shape, dynamic dims replaced by ``neurons``."""
        return (batch, *(neurons if d == DYNAMIC_FEATURES else d for d in self.feature_shape))

    def to_json(self) -> dict:
        return {
            "model": "lif",
            "threshold": self.threshold,
            "beta": self.beta,
            "v_reset": self.v_reset,
            "reset": self.reset,
            "dtype": self.dtype,
            "feature_shape": list(self.feature_shape),
        }

    @classmethod
    def from_json(cls, data: Mapping) -> NeuronSpec:
        if data.get("model", "lif") != "lif":
            raise ValueError(f"neuron model must be 'lif', got {data.get('model')!r}")
        return cls(
            threshold=data["threshold"],
            beta=data["beta"],
            v_reset=data["v_reset"],
            reset=data["reset"],
            dtype=data["dtype"],
            feature_shape=tuple(data["feature_shape"]),
        )


def _plain(t: torch.Tensor) -> float | list:
    t = t.detach().to(torch.float64)
    return t.item() if t.dim() == 0 else t.tolist()


def spec_from_module(module: nn.Module, dtype: str | None = None) -> NeuronSpec:
    """Lift a neuron module into a spec whose state is explicit.

    Accepts :class:`LIFNeuron`, :class:`LIFCell` and :class:`LIFSequence`
    (scripted ones too). Anything else is refused: exporting a module whose
    hidden state the exporter cannot see would silently give a graph without
    memory.
    """
    original = getattr(module, "original_name", None)  # ScriptModule
    known = (LIFNeuron, LIFCell, LIFSequence)
    if not isinstance(module, known) and original not in {k.__name__ for k in known}:
        stateful = [n for n, b in module.named_buffers()] if isinstance(module, nn.Module) else []
        raise TypeError(
            f"cannot export {type(module).__name__}: only LIFNeuron, LIFCell and LIFSequence have "
            "state the exporter can lift into explicit graph inputs/outputs"
            + (f" (its buffers {stateful} would be baked in, giving a graph with no memory)" if stateful else "")
        )
    beta, threshold, v_reset = module.neuron_parameters()
    if dtype is None:
        dtype = {v[0]: k for k, v in DTYPES.items()}.get(beta.dtype)
        if dtype is None:
            raise ValueError(f"dtype must be one of {list(DTYPES)}; the module's parameters are {beta.dtype}")
    return NeuronSpec(
        threshold=_plain(threshold), beta=_plain(beta), v_reset=_plain(v_reset),
        reset=module.reset, dtype=dtype,
        feature_shape=(DYNAMIC_FEATURES,),
    )


def spec_from_state_dict(
    path_or_dict: str | Path | Mapping[str, torch.Tensor],
    prefix: str = "",
    reset: str = "zero",
    dtype: str = "float32",
) -> NeuronSpec:
    """Build a spec from a saved ``state_dict`` of a LIF module (per-neuron values kept).

    ``prefix`` selects a submodule (``"lif."`` for ``model.lif``). Reset
    mechanism and dtype are not stored in a ``state_dict`` and are given here.
    """
    state = torch.load(path_or_dict, map_location="cpu", weights_only=True) if isinstance(
        path_or_dict, (str, Path)) else path_or_dict
    missing = [k for k in ("beta", "threshold", "v_reset") if prefix + k not in state]
    if missing:
        found = sorted(k for k in state if k.startswith(prefix))[:10]
        raise KeyError(
            f"state_dict has no {[prefix + k for k in missing]} (keys with prefix {prefix!r}: {found}); "
            "pass --prefix to select the LIF submodule"
        )
    values = {k: state[prefix + k] for k in ("beta", "threshold", "v_reset")}
    # Learned parameters are clamped in forward; export what forward uses.
    values["beta"] = values["beta"].clamp(0.0, 1.0)
    values["threshold"] = values["threshold"].clamp(min=MIN_LEARNED_THRESHOLD)
    return NeuronSpec(
        threshold=_plain(values["threshold"]), beta=_plain(values["beta"]), v_reset=_plain(values["v_reset"]),
        reset=reset, dtype=dtype, feature_shape=(DYNAMIC_FEATURES,),
    )


def parse_feature_shape(text: str | Sequence) -> tuple[int | str, ...]:
    """``"16"`` -> ``(16,)``, ``"4,4"`` -> ``(4, 4)``, ``"neurons"`` -> dynamic."""
    if not isinstance(text, str):
        return tuple(text)
    dims: list[int | str] = []
    for part in text.split(","):
        part = part.strip()
        if part == DYNAMIC_FEATURES:
            dims.append(part)
            continue
        try:
            dims.append(int(part))
        except ValueError:
            raise ValueError(
                f"feature shape must be comma-separated positive integers or {DYNAMIC_FEATURES!r}, got {text!r}"
            ) from None
    return tuple(dims)
