"""Conformance input suites: what ``lif-export verify`` runs through every backend.

``quick`` sizes keep the regular test suite to seconds; ``full`` runs long
sequences (10,000 steps) and large batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import inputs
from ..export.spec import NeuronSpec

NEURONS = 8  # size of a dynamic feature dimension in the suites


@dataclass(frozen=True)
class SuiteCase:
    name: str
    make_input: inputs.InputFn
    steps: int
    full_steps: int
    batch: int = 4
    initial: str = "zeros"  # "zeros", "negative_zeros" or "random"

    def build(self, spec: NeuronSpec, full: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(x[T, batch, *F], v0[batch, *F])`` in the spec's dtype."""
        steps = self.full_steps if full else self.steps
        shape = (steps, *spec.concrete_shape(self.batch, NEURONS))
        rng = np.random.default_rng(seed)
        dtype = spec.numpy_dtype
        params = spec.numpy_params()
        x = np.ascontiguousarray(self.make_input(params, shape, dtype, rng))
        if self.initial == "random":
            v0 = (rng.uniform(-1, 1, size=shape[1:]) * params["threshold"]).astype(dtype)
        elif self.initial == "negative_zeros":
            v0 = np.full(shape[1:], -0.0, dtype=dtype)
        else:
            v0 = np.zeros(shape[1:], dtype=dtype)
        return x, v0


SUITES: list[SuiteCase] = [
    SuiteCase("random_small", inputs.random_currents(0.1, mean=3.0), 100, 1000, initial="random"),
    SuiteCase("random_unit", inputs.random_currents(1.0), 100, 1000, initial="random"),
    SuiteCase("random_large", inputs.random_currents(100.0), 100, 1000),
    SuiteCase("random_batch1", inputs.random_currents(1.0), 100, 1000, batch=1),
    SuiteCase("random_batch64", inputs.random_currents(1.0), 50, 500, batch=64),
    SuiteCase("constant_low", inputs.constant(0.5), 100, 1000),
    SuiteCase("constant_high", inputs.constant(3.0), 100, 1000),
    SuiteCase("ramp", inputs.ramp, 100, 1000),
    SuiteCase("at_threshold", inputs.near_threshold(0), 60, 500),
    SuiteCase("near_threshold_1ulp", inputs.near_threshold(1), 60, 500),
    SuiteCase("near_threshold_2ulp", inputs.near_threshold(2), 60, 500),
    SuiteCase("huge", inputs.huge, 50, 500),
    SuiteCase("zeros", inputs.zeros, 20, 200, initial="negative_zeros"),
    SuiteCase("subnormal", inputs.subnormal, 50, 500),
    SuiteCase("special_values", inputs.special_values, 60, 500),
    SuiteCase("long", inputs.random_currents(1.0), 1000, 10_000, batch=2),
]


@dataclass(frozen=True)
class NetworkSuiteCase:
    """Inputs for a whole network: ``x[T, batch, *features]``, states zeros (or random)."""

    name: str
    scale: float
    steps: int
    full_steps: int
    batch: int = 4
    random_state: bool = False
    special: bool = False  # sprinkle NaN, +-inf, +-0, subnormals and huge values into x

    def build(self, manifest: dict, full: bool, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        entry = next(a for a in manifest["artifacts"] if a["name"] == "onnx_step")
        dtype = np.dtype(entry["inputs"][0]["dtype"])
        rng = np.random.default_rng(seed)
        features = entry["inputs"][0]["shape"][1:]
        x = (rng.random((self.full_steps if full else self.steps, self.batch, *features)) * self.scale).astype(dtype)
        if self.special:
            x = inputs.sprinkle_special_values(x, rng)
        states = {}
        for tensor in entry["inputs"][1:]:
            shape = (self.batch, *tensor["shape"][1:])
            states[tensor["name"]] = (rng.random(shape).astype(dtype) if self.random_state
                                      else np.zeros(shape, dtype))
        return x, states


NETWORK_SUITES: list[NetworkSuiteCase] = [
    NetworkSuiteCase("net_random", 1.0, 50, 500),
    NetworkSuiteCase("net_strong", 4.0, 50, 500),
    NetworkSuiteCase("net_random_state", 1.0, 30, 300, random_state=True),
    NetworkSuiteCase("net_zeros", 0.0, 10, 100),
    NetworkSuiteCase("net_special_values", 2.0, 30, 300, special=True),
    NetworkSuiteCase("net_batch1", 2.0, 50, 500, batch=1),
    NetworkSuiteCase("net_batch64", 2.0, 20, 200, batch=64),
    NetworkSuiteCase("net_long", 2.0, 300, 5000, batch=2),
]
