"""One registration of neuron parameters, shared by the cells (:mod:`lif_export.modules`) and the
network layers (:mod:`lif_export.network`).

A parameter is a buffer, or an ``nn.Parameter`` when it is learned; it is a 0-dim tensor (one
value for every neuron) or a per-neuron tensor. Every value is checked against the valid ranges
of ``docs/semantics.md`` when it is registered and again when a ``state_dict`` is loaded, so a
module never holds a value the semantics do not define.
"""


import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from . import validation
from .errors import InvalidTypeError, InvalidValueError
from .functional import clamp_learned
from .surrogate import DEFAULT_SURROGATE

#: Lower bound a learned threshold is clamped to in forward (the semantics need threshold > 0).
MIN_LEARNED_THRESHOLD = 1e-6

#: parameter name -> the check of its valid range (``docs/semantics.md``, "Valid parameters").
CHECKS: dict[str, Callable[[Tensor], None]] = {
    "beta": validation.check_beta,
    "threshold": validation.check_threshold,
    "v_reset": validation.check_v_reset,
    "alpha": lambda t: validation.check_unit_interval("alpha", t),
    "rho": lambda t: validation.check_unit_interval("rho", t),
    "b": validation.check_adaptation,
}


class LIFParameterAttributes:
    """What every LIF-type module (``LIFCell``, ``LIFLayer``, ...) has once :func:`register_lif_parameters`
    ran (declared here for type checkers), and how its forward reads the parameters."""

    beta: Tensor
    threshold: Tensor
    v_reset: Tensor
    reset: str
    surrogate: str
    surrogate_slope: float
    learn_beta: bool
    learn_threshold: bool
    min_threshold: float

    def neuron_parameters(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(beta, threshold, v_reset)`` as used in forward (learned ones clamped)."""
        beta, threshold = clamp_learned(self.beta, self.threshold, self.learn_beta, self.learn_threshold,
                                        self.min_threshold)
        return beta, threshold, self.v_reset


def register_parameter(module: Any, name: str, value: validation.ParamLike, dtype: torch.dtype | None,
                       shape: list[int] | None = None, learn: bool = False) -> Tensor:
    """Check ``value`` and register it on ``module`` as a buffer (or an ``nn.Parameter`` if ``learn``).

    ``shape``, if given, is the layer's per-sample shape: a per-neuron value must have exactly it.
    """
    tensor = validation.as_param_tensor(name, value, dtype)
    if shape is not None and tensor.dim() > 0 and list(tensor.shape) != list(shape):
        raise InvalidValueError(f"{name} must be a scalar or have shape {tuple(shape)}, got {tuple(tensor.shape)}")
    if name == "v_reset":
        tensor = validation.canonical_v_reset(tensor)
    CHECKS[name](tensor)
    if learn:
        setattr(module, name, nn.Parameter(tensor))
    else:
        module.register_buffer(name, tensor)
    return tensor


def register_lif_parameters(module: Any, beta: validation.ParamLike, threshold: validation.ParamLike,
                            v_reset: validation.ParamLike, reset: str, learn_beta: bool, learn_threshold: bool,
                            surrogate: str, surrogate_slope: float | None, dtype: torch.dtype | None,
                            shape: list[int] | None = None) -> None:
    """Register ``beta``, ``threshold``, ``v_reset`` and set the constants every LIF-type module has:
    ``reset``, ``learn_beta``, ``learn_threshold``, ``min_threshold``, ``surrogate``, ``surrogate_slope``."""
    module.reset = validation.check_reset(reset)
    module.surrogate, module.surrogate_slope = validation.check_surrogate(surrogate, surrogate_slope)
    module.learn_beta = validation.check_flag("learn_beta", learn_beta)
    module.learn_threshold = validation.check_flag("learn_threshold", learn_threshold)
    module.min_threshold = MIN_LEARNED_THRESHOLD
    tensors = {
        "beta": register_parameter(module, "beta", beta, dtype, shape, module.learn_beta),
        "threshold": register_parameter(module, "threshold", threshold, dtype, shape, module.learn_threshold),
        "v_reset": register_parameter(module, "v_reset", v_reset, dtype, shape),
    }
    validation.check_shapes_compatible(**tensors)


def surrogate_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``surrogate`` and ``surrogate_slope`` from keyword arguments, accepting the deprecated
    ``surrogate_alpha`` (``alpha`` names the synaptic decay; the surrogate's is its slope)."""
    if "surrogate_alpha" in kwargs:
        warnings.warn("surrogate_alpha is deprecated; use surrogate_slope", DeprecationWarning, stacklevel=3)
        if kwargs.get("surrogate_slope") is not None:
            raise InvalidTypeError("give surrogate_slope or the deprecated surrogate_alpha, not both")
        kwargs["surrogate_slope"] = kwargs.pop("surrogate_alpha")
    return {"surrogate": kwargs.pop("surrogate", DEFAULT_SURROGATE),
            "surrogate_slope": kwargs.pop("surrogate_slope", None)}


def check_loaded(module: nn.Module, state_dict: Mapping[str, Any], prefix: str) -> None:
    """Refuse a ``state_dict`` whose neuron parameters are out of range, before anything is copied."""
    for name, check in CHECKS.items():
        value = state_dict.get(prefix + name)
        if value is None or not hasattr(module, name):
            continue
        if not isinstance(value, Tensor) or not value.is_floating_point():
            kind = value.dtype if isinstance(value, Tensor) else type(value).__name__
            raise InvalidTypeError(f"{name} in the state_dict must be a floating-point tensor, got {kind}")
        try:
            check(value)
        except ValueError as err:
            raise InvalidValueError(f"load_state_dict: {err}") from None
