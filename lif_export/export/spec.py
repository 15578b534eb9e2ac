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
from ..errors import InvalidTypeError, InvalidValueError
from ..functional import broadcasts_to, lif_sequence
from ..io import load_torch_file
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
            raise InvalidValueError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        validation.check_reset(self.reset)
        tensors = self.parameter_tensors()
        validation.check_beta(tensors["beta"])
        validation.check_threshold(tensors["threshold"])
        validation.check_v_reset(tensors["v_reset"])
        validation.check_shapes_compatible(**tensors)
        shape = tuple(self.feature_shape)
        object.__setattr__(self, "feature_shape", shape)
        if not shape:
            raise InvalidValueError("feature_shape must have at least one dimension, got ()")
        for dim in shape:
            if not (dim == DYNAMIC_FEATURES or (isinstance(dim, int) and not isinstance(dim, bool) and dim > 0)):
                raise InvalidValueError(
                    f"feature_shape entries must be positive integers or {DYNAMIC_FEATURES!r}, got {shape!r}"
                )
        empty = [k for k, t in tensors.items() if t.numel() == 0]
        if empty:
            raise InvalidValueError(f"per-neuron {empty[0]} has no values (shape {tuple(tensors[empty[0]].shape)}): "
                                    "give at least one value per neuron")
        per_neuron = [k for k, t in tensors.items() if t.dim() > 0]
        if per_neuron:
            if DYNAMIC_FEATURES in shape:
                inferred = torch.broadcast_shapes(*(tensors[k].shape for k in per_neuron))
                object.__setattr__(self, "feature_shape", tuple(int(d) for d in inferred))
                shape = self.feature_shape
            for k in per_neuron:
                if not broadcasts_to(list(tensors[k].shape), [int(d) for d in shape]):
                    raise InvalidValueError(
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
        return (batch, *(d if isinstance(d, int) else neurons for d in self.feature_shape))

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
            raise InvalidValueError(f"neuron model must be 'lif', got {data.get('model')!r}")
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
        raise InvalidTypeError(
            f"cannot export {type(module).__name__}: only LIFNeuron, LIFCell and LIFSequence have "
            "state the exporter can lift into explicit graph inputs/outputs"
            + (f" (its buffers {stateful} would be baked in, giving a graph with no memory)" if stateful else "")
        )
    beta, threshold, v_reset = module.neuron_parameters()  # type: ignore[operator]
    if dtype is None:
        dtype = {v[0]: k for k, v in DTYPES.items()}.get(beta.dtype)
        if dtype is None:
            raise InvalidValueError(f"dtype must be one of {list(DTYPES)}; the module's parameters are {beta.dtype}")
    return NeuronSpec(
        threshold=_plain(threshold), beta=_plain(beta), v_reset=_plain(v_reset),
        reset=str(module.reset), dtype=dtype,
        feature_shape=(DYNAMIC_FEATURES,),
    )


def spec_from_state_dict(
    path_or_dict: str | Path | Mapping[str, torch.Tensor],
    prefix: str = "",
    reset: str = "zero",
    dtype: str = "float32",
    clamp_learned: bool = False,
) -> NeuronSpec:
    """Build a spec from a saved ``state_dict`` of a LIF module (per-neuron values kept).

    ``prefix`` selects a submodule (``"lif."`` for ``model.lif``). Reset mechanism and dtype are not
    stored in a ``state_dict`` and are given here. Values outside the valid ranges
    (``docs/semantics.md``) are refused like everywhere else, unless ``clamp_learned``: then beta
    and threshold are taken as learned parameters and exported as forward uses them (beta clamped
    to ``[0, 1]``, threshold to ``>= 1e-6``), e.g. a learned beta that drifted to 1.3 exports as 1.0.
    """
    if isinstance(path_or_dict, (str, Path)):
        state = load_torch_file(Path(path_or_dict), "--state-dict")
    else:
        state = path_or_dict
    if not isinstance(state, Mapping):
        raise InvalidTypeError(f"--state-dict must hold a state_dict (a dict of tensors), got {type(state).__name__}")
    missing = [k for k in ("beta", "threshold", "v_reset") if prefix + k not in state]
    if missing:
        found = sorted(str(k) for k in state if str(k).startswith(prefix))[:10]
        raise InvalidValueError(
            f"state_dict has no {[prefix + k for k in missing]} (keys with prefix {prefix!r}: {found}); "
            "pass --prefix to select the LIF submodule"
        )
    values = {}
    for name in ("beta", "threshold", "v_reset"):
        value = state[prefix + name]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            kind = value.dtype if isinstance(value, torch.Tensor) else type(value).__name__
            raise InvalidTypeError(f"{prefix + name} in the state_dict must be a floating-point tensor, got {kind}")
        values[name] = value.detach()
    if clamp_learned:
        values["beta"] = values["beta"].clamp(0.0, 1.0)
        values["threshold"] = values["threshold"].clamp(min=MIN_LEARNED_THRESHOLD)
    try:
        return NeuronSpec(threshold=_plain(values["threshold"]), beta=_plain(values["beta"]),
                          v_reset=_plain(values["v_reset"]), reset=reset, dtype=dtype,
                          feature_shape=(DYNAMIC_FEATURES,))
    except InvalidValueError as err:
        if clamp_learned or not str(err).startswith(("beta must", "threshold must")):
            raise
        raise InvalidValueError(
            f"{err} in the state_dict; if these are learned parameters that drifted out of range in training, "
            f"pass --clamp-learned (clamp_learned=True) to export what forward uses (beta clamped to [0, 1], "
            f"threshold to >= {MIN_LEARNED_THRESHOLD:g})") from None


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
            raise InvalidValueError(
                f"feature shape must be comma-separated positive integers or {DYNAMIC_FEATURES!r}, got {text!r}"
            ) from None
    return tuple(dims)
