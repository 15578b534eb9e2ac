"""Comparison of two runs with a readable account of the first difference: bit for bit
(:func:`compare`, the exact tier) or within tolerances (:func:`compare_within`, the float tier)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidValueError


@dataclass
class Comparison:
    backend: str
    case: str
    steps: int
    spikes: int  # spikes in the reference run
    spike_mismatches: int
    potential_mismatches: int  # elements of v_trace (and v_next) whose bits differ
    max_abs_dv: float
    first_difference: str | None

    @property
    def ok(self) -> bool:
        return self.spike_mismatches == 0 and self.potential_mismatches == 0 and self.first_difference is None


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint32 if a.dtype == np.float32 else np.uint64)


def _show(value: np.floating) -> str:
    return f"{float(value)!r} ({value.dtype.type(value).tobytes()[::-1].hex()})"


def _structure(backend: str, case: str, want: dict[str, np.ndarray],
               got: dict[str, np.ndarray]) -> Comparison | None:
    """A failed comparison if ``got`` lacks a tensor of ``want`` or has another shape or dtype, else ``None``."""
    primary = next(iter(want))
    spikes = int(np.nansum(want[primary])) if primary == "spike" or primary.endswith("spike") else 0
    for name, ref in want.items():
        other = got.get(name)
        if other is None or ref.shape != other.shape or ref.dtype != other.dtype:
            found = "missing" if other is None else f"{other.dtype}{list(other.shape)}"
            return Comparison(backend, case, want[primary].shape[0], spikes, -1, -1, float("inf"),
                              f"{name}: {found} where {ref.dtype}{list(ref.shape)} expected")
    return None


def compare(backend: str, case: str, want: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> Comparison:
    """Compare every named tensor of ``got`` with the reference ``want``, bit for bit.

    The first tensor is the primary output (spikes, or a network's ``out``),
    counted as "spike" mismatches; the others are states (``*_trace`` per
    step, ``*_next`` final), counted as potential mismatches. NaN payloads and
    signed zeros count.
    """
    primary = next(iter(want))
    steps = want[primary].shape[0]
    spikes = int(np.nansum(want[primary])) if primary == "spike" or primary.endswith("spike") else 0
    if (failed := _structure(backend, case, want, got)) is not None:
        return failed
    bad = {name: _bits(ref) != _bits(got[name]) for name, ref in want.items()}
    timed = [n for n in want if not n.endswith("_next")]
    max_dv = 0.0
    for name in want:
        if name != primary and bad[name].any():
            with np.errstate(all="ignore"):
                diff = np.abs(want[name].astype(np.float64) - got[name].astype(np.float64))
            max_dv = max(max_dv, float(np.where(bad[name], np.nan_to_num(diff, nan=np.inf), 0.0).max()))
    first = None
    per_step = [bad[n].reshape(steps, -1).any(axis=1) for n in timed if steps]
    if per_step and np.any(per_step):
        t = int(np.argmax(np.any(per_step, axis=0)))
        name = next(n for n in timed if bad[n][t].any())
        index = np.unravel_index(int(np.argmax(bad[name][t].reshape(-1))), bad[name].shape[1:])
        first = (f"step {t}, {name} index {tuple(int(i) for i in index)}: {_show(got[name][t][index])} "
                 f"vs reference {_show(want[name][t][index])}")
        if name != primary and primary in timed:
            first += (f"; {primary} {_show(got[primary][t][index])} vs reference {_show(want[primary][t][index])}"
                      if got[primary][t].shape == bad[name].shape[1:] else "")
    else:
        final = next((n for n in want if n.endswith("_next") and bad[n].any()), None)
        if final is not None:
            index = np.unravel_index(int(np.argmax(bad[final].reshape(-1))), bad[final].shape)
            first = (f"final state {final}, index {tuple(int(i) for i in index)}: {_show(got[final][index])} "
                     f"vs reference {_show(want[final][index])}")
    return Comparison(
        backend, case, steps, spikes, int(bad[primary].sum()),
        int(sum(bad[n].sum() for n in want if n != primary)), max_dv, first,
    )


# -- the float tier ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tolerance:
    """How far a float-tier backend may be from eager PyTorch (docs/networks.md, "Float tier").

    A run passes when at least ``spike_agreement`` of its spike values equal the reference's, and at
    least the same fraction of its readout and potential values are within ``atol + rtol * |reference|``
    (NaN matching NaN, an infinity the same infinity): a spike that flips moves its neuron's potential,
    and what follows it, by about a threshold for a while, so both are judged by how many agree.
    """

    spike_agreement: float = 0.999
    atol: float = 1e-4
    rtol: float = 1e-4

    def __post_init__(self) -> None:
        if not 0.0 <= self.spike_agreement <= 1.0:
            raise InvalidValueError(f"spike_agreement must be from 0 to 1, got {self.spike_agreement!r}")
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise InvalidValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def describe(self) -> str:
        return (f"spike agreement >= {self.spike_agreement:g}; readouts and potentials within "
                f"{self.atol:g} + {self.rtol:g}*|reference| for the same fraction")


@dataclass
class ToleranceComparison(Comparison):
    """A float-tier run: ``spike_mismatches`` counts spike values that differ, ``potential_mismatches``
    readout and potential values beyond the tolerance, ``max_abs_dv`` the largest readout or potential
    difference (``inf`` where one side is NaN or infinite and the other not)."""

    spike_values: int = 0
    readout_values: int = 0
    spike_agreement: float = 1.0
    readout_agreement: float = 1.0
    first_spike_step: int | None = None  # first step where a spike differs
    tolerance: Tolerance = field(default_factory=Tolerance)

    @property
    def ok(self) -> bool:
        return (self.spike_mismatches >= 0 and self.spike_agreement >= self.tolerance.spike_agreement
                and self.readout_agreement >= self.tolerance.spike_agreement)


def _first(where: dict[str, np.ndarray], timed: list[str], steps: int) -> tuple[int, str, tuple[int, ...]] | None:
    """``(step, tensor, index)`` of the first ``True`` of ``where`` over the timed tensors ``timed``."""
    hits = [(int(np.argmax(flags.reshape(steps, -1).any(axis=1))), name) for name in timed
            if steps and (flags := where[name]).any()]
    if not hits:
        return None
    t, name = min(hits)
    index = np.unravel_index(int(np.argmax(where[name][t].reshape(-1))), where[name].shape[1:])
    return t, name, tuple(int(i) for i in index)


def compare_within(backend: str, case: str, want: dict[str, np.ndarray], got: dict[str, np.ndarray],
                   tolerance: Tolerance, spikes: set[str]) -> Comparison:
    """Compare a float-tier run with the reference ``want`` within ``tolerance``.

    ``spikes`` names the tensors that are spikes (0 or 1), judged by their agreement rate; every other
    tensor is a readout or a potential, judged by ``atol`` and ``rtol``. Tensors ending in ``_next`` are
    final states; the others are ``[time, ...]``.
    """
    if (failed := _structure(backend, case, want, got)) is not None:
        return failed
    steps = next(iter(want.values())).shape[0]
    differ, beyond, largest = {}, {}, 0.0
    for name, ref in want.items():
        other = got[name]
        same_nan = np.isnan(ref) & np.isnan(other)
        if name in spikes:
            differ[name] = ~((ref == other) | same_nan)
            continue
        beyond[name] = ~np.isclose(other, ref, rtol=tolerance.rtol, atol=tolerance.atol, equal_nan=True)
        with np.errstate(all="ignore"):
            delta = np.abs(ref.astype(np.float64) - other.astype(np.float64))
        delta = np.where(same_nan | (ref == other), 0.0, np.nan_to_num(delta, nan=np.inf))
        largest = max(largest, float(delta.max()) if delta.size else 0.0)
    spike_values = sum(int(d.size) for d in differ.values())
    readout_values = sum(int(b.size) for b in beyond.values())
    spike_mismatches = sum(int(d.sum()) for d in differ.values())
    readout_mismatches = sum(int(b.sum()) for b in beyond.values())
    reference_spikes = sum(int(np.nansum(want[n])) for n in differ if not n.endswith("_next"))
    first_spike = _first(differ, [n for n in differ if not n.endswith("_next")], steps)
    first = first_spike or _first(beyond, [n for n in beyond if not n.endswith("_next")], steps)
    account = None
    if first is not None:
        t, name, index = first
        account = (f"step {t}, {name} index {index}: {_show(got[name][t][index])} vs reference "
                   f"{_show(want[name][t][index])}")
    elif spike_mismatches or readout_mismatches:
        account = "only in the final states"
    return ToleranceComparison(
        backend, case, steps, reference_spikes, spike_mismatches, readout_mismatches, largest, account,
        spike_values, readout_values, 1.0 - spike_mismatches / spike_values if spike_values else 1.0,
        1.0 - readout_mismatches / readout_values if readout_values else 1.0,
        first_spike[0] if first_spike else None, tolerance)
