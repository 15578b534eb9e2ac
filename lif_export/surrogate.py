"""Surrogate derivatives for the spike nonlinearity (Neftci, Mostafa & Zenke 2019).

The forward value of a spike is always the exact Heaviside step of ``docs/semantics.md``,
``s = 1 if u > theta else 0``. For training, the backward pass replaces the
derivative ``ds/du`` (zero almost everywhere) by a smooth surrogate ``g(z)`` of
``z = u - theta``. Each surrogate has one shape parameter ``slope`` (its slope
or scale):

================== ============================================== =========
name               g(z)                                           slope
================== ============================================== =========
``fast_sigmoid``   ``1 / (1 + slope*|z|)**2`` (SuperSpike)        10.0
``arctan``         ``(slope/2) / (1 + (pi/2 * slope * z)**2)``    2.0
``sigmoid``        ``slope * sig(slope*z) * (1 - sig(slope*z))``  4.0
``triangle``       ``slope * max(0, 1 - slope*|z|)``              1.0
``straight_through`` ``slope`` (identity scaled)                  1.0
================== ============================================== =========

Everything here is TorchScript-compatible: no ``autograd.Function`` (which
TorchScript cannot compile). :func:`surrogate_term` is a *gradient carrier*
``c - c.detach()`` to the hard step; it is exactly ``+0.0`` in the forward pass
(``c`` is kept finite), so no forward bit changes, and its derivative is the
analytic ``g(z)``.
"""

import math

import torch
from torch import Tensor

#: Surrogate name -> default ``slope``. The single source of valid names.
SURROGATES: dict[str, float] = {
    "fast_sigmoid": 10.0,
    "arctan": 2.0,
    "sigmoid": 4.0,
    "triangle": 1.0,
    "straight_through": 1.0,
}

DEFAULT_SURROGATE = "fast_sigmoid"


def surrogate_grad(z: Tensor, surrogate: str, slope: float) -> Tensor:
    """Surrogate derivative ``g(z)`` of the spike w.r.t. ``z = u - theta``.

    Args:
        z: distance to threshold, any shape.
        surrogate: one of :data:`SURROGATES`.
        slope: slope / scale, ``> 0``.

    Returns:
        ``g(z)``, same shape and dtype as ``z``.
    """
    if surrogate == "fast_sigmoid":
        return 1.0 / (slope * z.abs() + 1.0) ** 2
    if surrogate == "arctan":
        return (slope / 2.0) / (1.0 + (math.pi / 2.0 * slope * z) ** 2)
    if surrogate == "sigmoid":
        sig = torch.sigmoid(slope * z)
        return slope * sig * (1.0 - sig)
    if surrogate == "triangle":
        return slope * torch.clamp(1.0 - slope * z.abs(), min=0.0)
    if surrogate == "straight_through":
        return torch.full_like(z, slope)
    raise ValueError(
        "surrogate must be one of ['fast_sigmoid', 'arctan', 'sigmoid', 'triangle', "
        "'straight_through'], got '" + surrogate + "'"
    )


def surrogate_term(u: Tensor, threshold: Tensor, surrogate: str, slope: float) -> Tensor:
    """A term that is exactly ``+0.0`` but has derivative ``g(u - threshold)`` w.r.t. ``u``.

    Added to the hard spike it makes the spike differentiable without changing
    a bit of it: ``ds/du = g(u - threshold)``, ``ds/dthreshold = -g(u - threshold)``.
    Works on one step or on a whole stacked sequence at once.
    """
    z = u - threshold
    grad = torch.nan_to_num(surrogate_grad(z.detach(), surrogate, slope), nan=0.0)
    # The carrier must be finite for carrier - carrier.detach() to be exactly
    # +0.0; where z * grad is not finite (non-finite z, overflow) it is
    # replaced by 0, which also zeroes the gradient there.
    carrier = torch.nan_to_num(z * grad, nan=0.0, posinf=0.0, neginf=0.0)
    return carrier - carrier.detach()
