"""Constant input against the closed form of docs/semantics.md."""

import math

import numpy as np
import pytest
import torch

from lif_export import LIFSequence

BETAS = [0.0, 0.5, 0.8, 0.9, 0.95, 1.0]
CURRENTS = [0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.9, 1.01, 1.5, 3.0]
THETA = 1.0
T = 400


def predicted_period(current: float, beta: float, theta: float) -> int | None:
    """n* = smallest n with u_n = I (1 - beta^n) / (1 - beta) > theta, or None (never fires)."""
    if beta == 1.0:
        n = math.floor(theta / current) + 1  # u_n = n I
        return n
    if current / (1 - beta) <= theta:
        return None
    if beta == 0.0:
        return 1 if current > theta else None
    # I(1 - beta^n) > theta (1 - beta)  <=>  beta^n < 1 - theta (1 - beta) / I
    return math.floor(math.log(1 - theta * (1 - beta) / current) / math.log(beta)) + 1


def margin(current: float, beta: float, n: int) -> float:
    u = current * n if beta == 1.0 else current * (1 - beta**n) / (1 - beta)
    return abs(u - THETA)


GRID = [(i, b) for b in BETAS for i in CURRENTS]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_constant_input_period_matches_closed_form(dtype):
    currents = torch.tensor([i for i, _ in GRID], dtype=dtype)
    betas = torch.tensor([b for _, b in GRID], dtype=dtype)
    seq = LIFSequence(threshold=THETA, beta=betas, dtype=dtype)
    spikes, _ = seq(currents.expand(T, -1).contiguous())
    checked = 0
    for k, (current, beta) in enumerate(GRID):
        period = predicted_period(current, beta, THETA)
        times = torch.nonzero(spikes[:, k]).flatten().tolist()
        if period is None:
            assert times == [], f"I={current}, beta={beta}: must never fire, fired at {times[:5]}"
            continue
        # Skip cases whose u_{n*} or u_{n*-1} is within rounding of theta.
        if min(margin(current, beta, period), margin(current, beta, period - 1)) < 1e-4:
            continue
        want = list(range(period - 1, T, period))
        assert times == want, f"I={current}, beta={beta}: period {period}, got times {times[:6]}"
        checked += 1
    assert checked >= 30


def test_boundary_input_never_fires():
    """I / (1 - beta) == theta exactly: u_n approaches theta from below and never exceeds it."""
    cases = [(0.5, 0.5), (0.25, 0.75), (0.125, 0.875)]  # all exact binary fractions
    for dtype in (torch.float32, torch.float64):
        currents = torch.tensor([c for c, _ in cases], dtype=dtype)
        betas = torch.tensor([b for _, b in cases], dtype=dtype)
        spikes, v = LIFSequence(threshold=1.0, beta=betas, dtype=dtype)(
            currents.expand(2000, -1).contiguous()
        )
        assert spikes.sum().item() == 0
        assert (v <= 1.0).all() and (v > 0.99).all()


def test_low_input_never_spikes_high_input_spikes_periodically():
    seq = LIFSequence(threshold=1.0, beta=0.9)
    low, _ = seq(torch.full((1000, 1), 0.099))
    assert low.sum() == 0
    high, _ = seq(torch.full((1000, 1), 0.5))
    times = np.flatnonzero(high[:, 0].numpy())
    assert len(times) > 100 and set(np.diff(times)) == {predicted_period(0.5, 0.9, 1.0)}
