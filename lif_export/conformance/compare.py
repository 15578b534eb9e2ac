"""Bit-for-bit comparison of two runs, with a readable account of the first difference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    for name, ref in want.items():
        other = got.get(name)
        if other is None or ref.shape != other.shape or ref.dtype != other.dtype:
            found = "missing" if other is None else f"{other.dtype}{list(other.shape)}"
            return Comparison(backend, case, steps, spikes, -1, -1, float("inf"),
                              f"{name}: {found} where {ref.dtype}{list(ref.shape)} expected")
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
