"""Bit-for-bit comparison of two runs, with a readable account of the first difference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends.base import RunResult


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


def compare(backend: str, case: str, reference: RunResult, candidate: RunResult) -> Comparison:
    """Compare ``candidate`` with ``reference`` bit for bit (NaN payloads and signed zeros too)."""
    steps = reference.spike.shape[0]
    spikes = int(np.nansum(reference.spike))
    for field in ("spike", "v_next", "v_trace"):
        ref, got = getattr(reference, field), getattr(candidate, field)
        if ref.shape != got.shape or ref.dtype != got.dtype:
            return Comparison(backend, case, steps, spikes, -1, -1, float("inf"),
                              f"{field}: {got.dtype}{list(got.shape)} where {ref.dtype}{list(ref.shape)} expected")
    spike_bad = _bits(reference.spike) != _bits(candidate.spike)
    trace_bad = _bits(reference.v_trace) != _bits(candidate.v_trace)
    final_bad = _bits(reference.v_next) != _bits(candidate.v_next)
    with np.errstate(all="ignore"):
        diff = np.abs(reference.v_trace.astype(np.float64) - candidate.v_trace.astype(np.float64))
    diff = np.where(trace_bad, np.nan_to_num(diff, nan=np.inf), 0.0)
    first = None
    if spike_bad.any() or trace_bad.any():
        t = int(np.argmax((spike_bad | trace_bad).reshape(steps, -1).any(axis=1)))
        flat = (spike_bad[t] | trace_bad[t]).reshape(-1)
        index = np.unravel_index(int(np.argmax(flat)), spike_bad.shape[1:])
        first = (
            f"step {t}, index {tuple(int(i) for i in index)}: spike {_show(candidate.spike[t][index])} "
            f"vs reference {_show(reference.spike[t][index])}; v {_show(candidate.v_trace[t][index])} "
            f"vs reference {_show(reference.v_trace[t][index])}"
        )
    elif final_bad.any():
        index = np.unravel_index(int(np.argmax(final_bad.reshape(-1))), final_bad.shape)
        first = (f"final state, index {tuple(int(i) for i in index)}: {_show(candidate.v_next[index])} "
                 f"vs reference {_show(reference.v_next[index])}")
    return Comparison(
        backend, case, steps, spikes,
        int(spike_bad.sum()), int(trace_bad.sum() + final_bad.sum()),
        float(diff.max()) if diff.size else 0.0, first,
    )
