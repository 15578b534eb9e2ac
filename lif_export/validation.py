"""Construction-time checks of neuron parameters (``docs/semantics.md``, "Valid parameters").

Every check raises an :class:`~lif_export.errors.InvalidValueError` or
:class:`~lif_export.errors.InvalidTypeError` (a ``ValueError``/``TypeError``) whose message names
the parameter, the offending value and what is allowed. Checks run once, when a
module is built or a model is exported; the per-step checks on tensors that
must also run inside TorchScript live in :mod:`lif_export.functional`.
"""

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .errors import InvalidTypeError, InvalidValueError
from .surrogate import SURROGATES

#: Valid reset mechanisms (``docs/semantics.md``).
RESETS: tuple[str, ...] = ("zero", "subtract", "none")

ParamLike = float | int | Sequence[float] | Tensor


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        if value.dim() == 0:
            return repr(value.item())
        if value.numel() <= 6:
            return repr(value.tolist())
        return f"a tensor of shape {tuple(value.shape)}"
    return repr(value)


def _offending(value: Tensor, bad: Tensor) -> str:
    """The bad entries of a parameter: the value itself, or some per-neuron entries."""
    if value.dim() == 0:
        return repr(value.item())
    count = int(bad.sum())
    return f"{value[bad][:4].tolist()} ({count} of {value.numel()} per-neuron values)"


def as_param_tensor(name: str, value: ParamLike, dtype: torch.dtype | None = None) -> Tensor:
    """Convert a float, int, sequence or tensor parameter to a floating tensor.

    A scalar becomes a 0-dim tensor, a per-neuron value keeps its shape.
    """
    if isinstance(value, bool):
        raise InvalidTypeError(f"{name} must be a real number or a floating tensor, got {value!r}")
    dtype = dtype or torch.get_default_dtype()
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point or dtype.is_complex:
        raise InvalidTypeError(f"dtype must be a real floating-point torch dtype (torch.float32 or torch.float64), "
                        f"got {dtype!r}")
    if isinstance(value, Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise InvalidTypeError(f"{name} must be a real floating tensor, got dtype {value.dtype}")
        return value.detach().to(dtype=dtype).clone()
    if isinstance(value, (int, float)):
        return torch.tensor(float(value), dtype=dtype)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        try:
            return torch.tensor(value, dtype=dtype)  # nested lists for multi-dim per-neuron values
        except (TypeError, ValueError, RuntimeError):
            pass
    raise InvalidTypeError(
        f"{name} must be a float or a tensor of per-neuron values, got {_describe(value)} "
        f"of type {type(value).__name__}"
    )


def check_unit_interval(name: str, value: Tensor) -> None:
    """``0 <= value <= 1`` everywhere (NaN is rejected): decays such as ``beta``."""
    bad = ~((value >= 0) & (value <= 1))
    if bool(bad.any()):
        raise InvalidValueError(f"{name} must satisfy 0 <= {name} <= 1, got {_offending(value, bad)}")


def check_beta(beta: Tensor) -> None:
    check_unit_interval("beta", beta)


def check_threshold(threshold: Tensor) -> None:
    """``threshold`` finite and ``> 0`` everywhere."""
    bad = ~(torch.isfinite(threshold) & (threshold > 0))
    if bool(bad.any()):
        raise InvalidValueError(
            f"threshold must be finite and > 0, got {_offending(threshold, bad)}"
        )


def check_adaptation(b: Tensor) -> None:
    """``b`` (the adaptive LIF's threshold jump) finite and ``>= 0`` everywhere."""
    bad = ~(torch.isfinite(b) & (b >= 0))
    if bool(bad.any()):
        raise InvalidValueError(f"b must be finite and >= 0, got {_offending(b, bad)}")


def check_flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidTypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_v_reset(v_reset: Tensor) -> None:
    """``v_reset`` finite everywhere."""
    bad = ~torch.isfinite(v_reset)
    if bool(bad.any()):
        raise InvalidValueError(f"v_reset must be finite, got {_offending(v_reset, bad)}")


def canonical_v_reset(v_reset: Tensor) -> Tensor:
    """Store a ``-0.0`` reset potential as ``+0.0`` (every other value unchanged).

    onnxruntime's ``Where`` returns ``+0.0`` for a selected ``-0.0``
    (onnxruntime issue 32191), so a ``-0.0`` reset potential could not be
    reproduced bit for bit there; normalising the parameter keeps every
    backend identical. ``-0.0 + 0.0 == +0.0`` under IEEE 754.
    """
    return v_reset + 0.0


def check_reset(reset: object) -> str:
    if not isinstance(reset, str) or reset not in RESETS:
        raise InvalidValueError(f"reset must be one of {list(RESETS)}, got {reset!r}")
    return reset


def check_surrogate(surrogate: object, slope: float | None) -> tuple[str, float]:
    """Return ``(surrogate, slope)`` with ``slope`` defaulted per surrogate."""
    if not isinstance(surrogate, str) or surrogate not in SURROGATES:
        raise InvalidValueError(f"surrogate must be one of {list(SURROGATES)}, got {surrogate!r}")
    if slope is None:
        return surrogate, SURROGATES[surrogate]
    if isinstance(slope, bool) or not isinstance(slope, (int, float)):
        raise InvalidTypeError(f"surrogate_slope must be a float, got {slope!r}")
    if not (math.isfinite(slope) and slope > 0):
        raise InvalidValueError(f"surrogate_slope must be finite and > 0, got {slope!r}")
    return surrogate, float(slope)


def check_shapes_compatible(**params: Tensor) -> None:
    """Per-neuron parameters must broadcast against each other."""
    try:
        torch.broadcast_shapes(*(p.shape for p in params.values()))
    except RuntimeError:
        shapes = ", ".join(f"{k}={tuple(v.shape)}" for k, v in params.items())
        raise InvalidValueError(f"per-neuron parameters must broadcast together, got {shapes}") from None
