"""Input generators shared by the golden vectors and the conformance suites.

Each generator takes the neuron's parameters (NumPy arrays in the export
dtype, broadcastable to one step), the full ``[time, batch, *F]`` shape and a
seeded ``numpy.random.Generator``, and returns input currents ``x`` of that
shape and dtype. They are chosen to exercise what random inputs miss:
exact-threshold hits, values within an ulp of the threshold (which expose a
fused multiply-add or reordered arithmetic), huge, tiny and non-finite values.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .reference import reference_step

Params = dict  # "beta", "threshold", "v_reset" -> np.ndarray; "reset" -> str
InputFn = Callable[[Params, tuple, np.dtype, np.random.Generator], np.ndarray]


def random_currents(scale: float, mean: float = 0.35) -> InputFn:
    """Normal currents with the given mean and spread, in units of the threshold."""

    def make(p, shape, dtype, rng):
        return (rng.normal(mean * scale, scale, size=shape) * p["threshold"]).astype(dtype)

    return make


def constant(ratio: float) -> InputFn:
    """Constant ``I`` with ``I / (1 - beta) = ratio * theta`` (``theta/7`` at least when ``beta = 1``
    and ``ratio > 1``, so that it still fires; zero when ``ratio < 1``)."""

    def make(p, shape, dtype, rng):
        current = ratio * p["threshold"] * (1 - p["beta"])
        if ratio > 1:
            current = np.maximum(current, p["threshold"] / 7)
        return np.broadcast_to(current, shape).astype(dtype)

    return make


def ramp(p, shape, dtype, rng):
    """A linear ramp from ``-theta`` to ``2 theta`` over time."""
    t = np.linspace(-1.0, 2.0, shape[0]).reshape(-1, *([1] * (len(shape) - 1)))
    return np.broadcast_to(t * p["threshold"], shape).astype(dtype)


def near_threshold(max_ulps: int) -> InputFn:
    """Every other step puts ``beta*v + x`` within ``max_ulps`` ulp of the threshold.

    The steps in between wind the potential down to ``-2 .. -16`` thresholds,
    so that the aiming step's ``beta*v`` is large and its rounding error is
    several ulp of the threshold: a fused multiply-add or reordered arithmetic
    then lands on the other side of the threshold, which a random input
    almost never shows. The state is advanced with the independent NumPy
    reference while the input is built. ``max_ulps = 0`` aims exactly.
    """

    def make(p, shape, dtype, rng):
        theta = np.broadcast_to(p["threshold"], shape[1:]).astype(dtype)
        beta = np.broadcast_to(p["beta"], shape[1:]).astype(dtype)
        x = np.empty(shape, dtype=dtype)
        v = np.zeros(shape[1:], dtype=dtype)
        for t in range(shape[0]):
            if t % 2 == 0:
                x[t] = (-rng.uniform(2, 16, size=shape[1:]) * theta).astype(dtype)
            else:
                target = theta.copy()
                for _ in range(max_ulps):
                    step = rng.integers(-1, 2, size=target.shape)
                    up, down = np.nextafter(target, np.inf), np.nextafter(target, -np.inf)
                    target = np.where(step > 0, up, np.where(step < 0, down, target)).astype(dtype)
                with np.errstate(all="ignore"):
                    x[t] = target - beta * v
            _, v = reference_step(x[t], v, p["beta"], p["threshold"], p["v_reset"], p["reset"])
        return x

    return make


def sprinkle_special_values(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x[T, ...]`` with NaN, +-inf, +-0, subnormals and the largest float put into every fifth step."""
    info = np.finfo(x.dtype)
    specials = np.array(
        [np.nan, np.inf, -np.inf, 0.0, -0.0, info.smallest_subnormal, -info.smallest_subnormal, info.max],
        dtype=x.dtype,
    )
    flat = x.reshape(x.shape[0], -1).copy()
    for t in range(0, x.shape[0], 5):
        cols = rng.choice(flat.shape[1], size=min(3, flat.shape[1]), replace=False)
        flat[t, cols] = rng.choice(specials, size=len(cols))
    return flat.reshape(x.shape)


def special_values(p, shape, dtype, rng):
    """Random currents with NaN, +-inf, +-0, subnormals and the largest float sprinkled in."""
    return sprinkle_special_values(random_currents(1.0)(p, shape, dtype, rng), rng)


def huge(p, shape, dtype, rng):
    """Magnitudes near the top of the dtype's range (products overflow to inf)."""
    top = float(np.finfo(dtype).max)
    return (rng.uniform(-1, 1, size=shape) * top).astype(dtype)


def zeros(p, shape, dtype, rng):
    """Zeros of both signs."""
    return np.where(rng.random(size=shape) < 0.5, 0.0, -0.0).astype(dtype)


def negative_zero_underflow(p, shape, dtype, rng):
    """The smallest negative subnormal, then ``-0.0``: where ``beta <= 0.5``, ``beta * v`` underflows to
    ``-0.0`` and ``-0.0 + -0.0`` must stay ``-0.0`` (elsewhere ``v`` stays that subnormal)."""
    x = np.full(shape, -0.0, dtype)
    x[0] = -np.finfo(dtype).smallest_subnormal
    return x


def subnormal(p, shape, dtype, rng):
    """Currents in the subnormal range (and ``beta*v`` products that underflow)."""
    tiny = float(np.finfo(dtype).smallest_normal)
    return (rng.uniform(-4, 4, size=shape) * tiny).astype(dtype)
