"""The one catalogue of input cases: what the golden vectors hold and what ``lif-export verify``
and the tests run through every backend.

A case makes ``x[time, batch, *features]`` and the initial state of every state tensor for any
model, knowing only its :class:`Signature` (names, shapes, dtype), which an exported model and a
manifest both give. Cases aimed at one neuron's
threshold (``neuron_only``) run only on single-neuron models. ``golden`` cases are written at
export as golden vectors (``vectors/<case>/``); every case runs in ``verify``, the short
``steps`` by default and ``full_steps`` with ``--full``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import inputs

#: Size given to a dynamic feature dimension when inputs are made.
DYNAMIC_SIZE = 8


@dataclass(frozen=True)
class Signature:
    """What a case needs to know of a model: its input and state tensors, dtype, and the neuron
    parameters that aim inputs at a threshold (a single neuron's own, or the default neuron's)."""

    dtype: str
    x_dims: list[int | str]  # [batch, *features]
    states: dict[str, list[int | str]]  # state input name -> [batch, ...]
    single_neuron: bool
    params: dict = field(default_factory=dict)

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def input_parameters(self) -> dict:
        if self.params:
            return self.params
        d = self.numpy_dtype
        return {"beta": np.asarray(0.9, d), "threshold": np.asarray(1.0, d), "v_reset": np.asarray(0.0, d),
                "reset": "zero"}

    @staticmethod
    def concrete(dims: list[int | str], batch: int) -> tuple[int, ...]:
        """``[batch, ...]`` with every named dim after the batch given :data:`DYNAMIC_SIZE`."""
        return (batch, *(d if isinstance(d, int) else DYNAMIC_SIZE for d in dims[1:]))


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    make_input: inputs.InputFn
    steps: int
    full_steps: int
    batch: int = 4
    initial: str = "zeros"  # "zeros", "negative_zeros" or "random" (uniform in +-threshold)
    golden: bool = False
    neuron_only: bool = False
    #: near the dtype's range a float-tier layer's sum overflows in one summation order and not in another,
    #: so the float tier leaves the case out unless asked for by name (docs/networks.md, "Float tier")
    order_sensitive: bool = False

    def applies_to(self, signature: Signature) -> bool:
        return signature.single_neuron or not self.neuron_only

    def build(self, signature: Signature, full: bool = False,
              seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(x, {state input name: initial value})`` in the model's dtype."""
        steps = self.full_steps if full else self.steps
        shape = (steps, *Signature.concrete(signature.x_dims, self.batch))
        rng = np.random.default_rng(seed)
        dtype = signature.numpy_dtype
        params = signature.input_parameters()
        x = np.ascontiguousarray(self.make_input(params, shape, dtype, rng))
        states = {}
        for name, dims in signature.states.items():
            state_shape = Signature.concrete(dims, self.batch)
            if self.initial == "random":
                scale = params["threshold"] if signature.single_neuron else 1.0
                states[name] = (rng.uniform(-1, 1, size=state_shape) * scale).astype(dtype)
            else:
                states[name] = np.full(state_shape, -0.0 if self.initial == "negative_zeros" else 0.0, dtype)
        return x, states


CASES: dict[str, Case] = {case.name: case for case in [
    Case("random_small", "currents 3 +- 0.1 thresholds: regular firing", inputs.random_currents(0.1, mean=3.0),
         100, 1000, initial="random"),
    Case("random_unit", "normal currents, mean 0.35 theta, sd theta, from a random state",
         inputs.random_currents(1.0), 100, 1000, initial="random", golden=True),
    Case("random_large", "normal currents with sd 100 theta", inputs.random_currents(100.0), 100, 1000),
    Case("random_batch1", "normal currents, batch 1", inputs.random_currents(1.0), 100, 1000, batch=1),
    Case("random_batch64", "normal currents, batch 64", inputs.random_currents(1.0), 50, 500, batch=64),
    Case("constant_low", "constant I with I/(1-beta) = theta/2: never fires", inputs.constant(0.5), 100, 1000,
         golden=True),
    Case("constant_high", "constant I with I/(1-beta) = 3 theta: fires periodically", inputs.constant(3.0),
         100, 1000, golden=True),
    Case("ramp", "a ramp from -theta to 2 theta", inputs.ramp, 100, 1000),
    Case("at_threshold", "beta*v + x exactly theta every other step", inputs.near_threshold(0), 60, 500,
         neuron_only=True),
    Case("near_threshold_1ulp", "beta*v + x within one ulp of theta", inputs.near_threshold(1), 60, 500,
         neuron_only=True),
    Case("near_threshold", "beta*v + x within two ulp of theta at every other step", inputs.near_threshold(2),
         60, 500, golden=True, neuron_only=True),
    Case("huge", "magnitudes near the dtype's largest (products overflow)", inputs.huge, 50, 500,
         order_sensitive=True),
    Case("zeros", "zeros of both signs from a -0.0 state", inputs.zeros, 20, 200, initial="negative_zeros"),
    Case("subnormal", "subnormal currents", inputs.subnormal, 50, 500),
    Case("negative_zero", "a negative subnormal state that beta <= 0.5 underflows to -0.0, then -0.0 currents",
         inputs.negative_zero_underflow, 10, 100),
    Case("special_values", "random with NaN, +-inf, +-0, subnormals and the largest float", inputs.special_values,
         60, 500, golden=True),
    Case("long", "normal currents, 1,000 steps (10,000 with --full)", inputs.random_currents(1.0), 1000, 10_000,
         batch=2),
]}


def cases_for(signature: Signature) -> list[Case]:
    return [c for c in CASES.values() if c.applies_to(signature)]


def golden_cases(signature: Signature) -> list[Case]:
    return [c for c in cases_for(signature) if c.golden]
