"""Membrane-potential plots for ``lif-export plot`` (needs the ``plot`` extra)."""

from pathlib import Path

import torch

from .functional import integrate
from .io import atomic_write
from .modules import LIFSequence


def simulate(
    currents: torch.Tensor, steps: int, neuron: LIFSequence
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``neuron`` on ``currents``: ``[N]`` constant per neuron or ``[T, N]``.

    Returns ``(spikes[T, N], potentials[T, N])``; potentials are the
    integrated ``u`` before the reset, so a spike shows as a crossing.
    """
    x = currents.expand(steps, -1).contiguous() if currents.dim() == 1 else currents
    with torch.no_grad():
        spikes, _, trace = neuron.forward_trace(x)
        beta, _, _ = neuron.neuron_parameters()
        previous = torch.cat([torch.zeros_like(trace[:1]), trace[:-1]])
        u = integrate(x, previous, beta)
    return spikes, u


def plot_dynamics(
    currents: torch.Tensor,
    steps: int,
    neuron: LIFSequence,
    out: Path,
    title: str | None = None,
) -> Path:
    """Write a PNG of membrane potential over time with threshold and spikes marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "lif-export plot needs matplotlib: pip install 'lif_export[plot]'"
        ) from err

    spikes, u = simulate(currents, steps, neuron)
    n = u.shape[1]
    fig, axes = plt.subplots(n, 1, figsize=(9, 1.8 + 1.6 * n), sharex=True, squeeze=False)
    threshold = neuron.neuron_parameters()[1].expand(n)
    for k, ax in enumerate(axes[:, 0]):
        times = torch.arange(u.shape[0])
        ax.plot(times, u[:, k], lw=1.2, label="membrane potential u")
        ax.axhline(threshold[k].item(), color="tab:red", ls="--", lw=1, label="threshold")
        fired = spikes[:, k] > 0
        ax.scatter(times[fired], u[fired, k], marker="^", color="tab:red", zorder=3, label="spike")
        label = f"I = {currents[k].item():g}" if currents.dim() == 1 else "random input"
        ax.set_ylabel(f"neuron {k}\n{label}")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("time step")
    fig.suptitle(title or f"LIF dynamics ({neuron.extra_repr()})", fontsize=9)
    fig.tight_layout()

    def save(tmp: Path) -> None:
        fig.savefig(tmp, format="png", dpi=110)

    atomic_write(out, save)
    plt.close(fig)
    return out
