"""Bring your own network: an snnTorch model trained on scikit-learn's bundled digits, imported into
lif_export with the same spikes, then made exact for export.

The model (snnTorch, default ``Leaky``: subtract reset, ``reset_delay=True``)::

    Linear(64, 64) -> Leaky -> Linear(64, 10) -> Leaky       prediction: the most spikes over time

is trained with snnTorch's own surrogate gradient, then :func:`~lif_export.convert.from_snntorch`
imports it (``LIFLayer(reset="subtract", reset_timing="next_step")``, the ``nn.Linear`` layers kept):
its spikes equal snnTorch's, bit for bit, on the whole test set. :func:`~lif_export.network.to_exact`
then rounds the weights to the exact grid (reported per layer), which is what ``export_network``
needs; its accuracy is reported beside the others. The data ships inside scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..convert import from_snntorch
from ..convert.snntorch import import_snntorch
from ..network import SpikingSequential, to_exact
from .digits import encode, load_data


@dataclass
class SnntorchExampleResult:
    accuracy_snntorch: float
    accuracy_imported: float
    accuracy_exact: float
    spike_mismatches: int  # snnTorch's output spikes vs the imported network's, on the test set
    spikes_compared: int
    rounding: list[str]  # to_exact's report, one line per layer


def build_model(seed: int = 0) -> nn.Sequential:
    snn = import_snntorch()
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 64), snn.Leaky(beta=0.9, init_hidden=True),
                         nn.Linear(64, 10), snn.Leaky(beta=0.9, init_hidden=True))


def snntorch_spikes(model: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``x[T, N, 64]`` -> output spikes ``[T, N, 10]`` from snnTorch's forward pass."""
    from snntorch import utils

    utils.reset(model)
    return torch.stack([model(x_t) for x_t in x])


def network_spikes(net: SpikingSequential, x: torch.Tensor) -> torch.Tensor:
    return net.forward_sequence(x, net.initial_state(x.shape[1], x.dtype))[0]


def train(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, epochs: int, steps: int, batch: int = 64,
          lr: float = 5e-3, seed: int = 0) -> nn.Sequential:
    """Adam on the cross-entropy of the spike counts (snnTorch's rate coding)."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            optimiser.zero_grad()
            counts = snntorch_spikes(model, encode(x[idx], steps)).sum(0)
            nn.functional.cross_entropy(counts, y[idx]).backward()
            optimiser.step()
    return model.eval()


def accuracy(spikes: torch.Tensor, y: torch.Tensor) -> float:
    return int((spikes.sum(0).argmax(1) == y).sum()) / len(y)


def run(epochs: int = 10, steps: int = 10, seed: int = 0, out_dir: Path | None = None,
        report: Callable[[str], None] = print) -> SnntorchExampleResult:
    """Train, import, compare, make exact (and export it into ``out_dir`` if given)."""
    data = load_data(seed)
    model = train(build_model(seed), data.x_train, data.y_train, epochs, steps, seed=seed)
    x_test = encode(data.x_test, steps)
    with torch.no_grad():
        reference = snntorch_spikes(model, x_test)
        net = from_snntorch(model, report=report)
        imported = network_spikes(net, x_test)
        rounding: list[str] = []
        exact = to_exact(net, report=rounding.append)
        assert isinstance(exact, SpikingSequential)
        exact_spikes = network_spikes(exact, x_test)
    result = SnntorchExampleResult(accuracy(reference, data.y_test), accuracy(imported, data.y_test),
                                   accuracy(exact_spikes, data.y_test), int((reference != imported).sum()),
                                   reference.numel(), rounding)
    report(f"snnTorch test accuracy {result.accuracy_snntorch:.4f} on {len(data.y_test)} digits")
    report(f"imported (from_snntorch): accuracy {result.accuracy_imported:.4f}, output spikes differing from "
           f"snnTorch's: {result.spike_mismatches} of {result.spikes_compared}")
    for line in rounding:
        report(f"to_exact {line}")
    report(f"exact (to_exact, exportable): accuracy {result.accuracy_exact:.4f}")
    if out_dir is not None:
        from ..export import export_network

        export_network(exact, (64,), out_dir, report=report)
        report(f"exported into {out_dir}: run `lif-export verify {out_dir}`")
    return result
