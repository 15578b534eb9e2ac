"""Bring your own network: an snnTorch model trained on scikit-learn's bundled digits, imported into
lif_export with the same spikes, then made exact for export.

The model (snnTorch, default ``Leaky``: subtract reset, ``reset_delay=True``)::

    Linear(64, 64) -> Leaky -> Linear(64, 10) -> Leaky       prediction: the most spikes over time

is trained with snnTorch's own surrogate gradient, then :func:`~lif_export.convert.from_snntorch`
imports it (``LIFLayer(reset="subtract", reset_timing="next_step")``, the ``nn.Linear`` layers kept):
its spikes equal snnTorch's, bit for bit, on the whole test set. Exported as it is, it is a float-tier
network (its ``nn.Linear`` sums round in each backend's own order, docs/networks.md);
:func:`~lif_export.network.to_exact` rounds the weights to the exact grid (reported per layer), which
makes every backend bit-identical. With ``out_dir`` both are exported and every backend of each runs
the test set: the accuracy of each is reported. The data ships inside scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
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
    #: with ``out_dir``: ``{"float" | "exact": {backend: test accuracy}}`` of the exported sets
    backend_accuracy: dict[str, dict[str, float]] = field(default_factory=dict)


#: The formats each tier is exported in: the C library writes the exact tier only.
TIER_FORMATS = {"float": ("onnx", "torchscript", "pt2"), "exact": ("onnx", "torchscript", "pt2", "c")}


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


def backend_accuracies(models_dir: Path, net: SpikingSequential, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Every backend of the export in ``models_dir`` (``lif-export verify``'s) run on ``x[T, N, 64]`` from
    the zero state: its accuracy on the labels ``y[N]``."""
    from ..backends.base import Context
    from ..conformance.verify import build_backends
    from ..export.manifest import load_manifest

    states = {name: s.numpy() for name, s in zip(net.state_names, net.initial_state(x.shape[1], x.dtype),
                                                  strict=True)}
    backends = build_backends(Context(models_dir, load_manifest(models_dir)))
    return {b.name: accuracy(torch.from_numpy(b.run(x.numpy(), states)["out"]), y) for b in backends}


def run(epochs: int = 10, steps: int = 10, seed: int = 0, out_dir: Path | None = None,
        report: Callable[[str], None] = print) -> SnntorchExampleResult:
    """Train, import, compare, make exact; with ``out_dir``, export both tiers into ``out_dir/float`` and
    ``out_dir/exact`` and run every backend of each on the test set."""
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

        for tier, network in (("float", net), ("exact", exact)):
            folder = Path(out_dir) / tier
            export_network(network, (64,), folder, formats=TIER_FORMATS[tier], report=lambda line: None)
            result.backend_accuracy[tier] = backend_accuracies(folder, network, x_test, data.y_test)
            scores = sorted(set(result.backend_accuracy[tier].values()))
            span = f"{scores[0]:.4f}" if len(scores) == 1 else f"{scores[0]:.4f} to {scores[-1]:.4f}"
            report(f"{tier} tier exported into {folder} ({', '.join(TIER_FORMATS[tier])}): "
                   f"{len(result.backend_accuracy[tier])} backends, test accuracy {span}; "
                   f"run `lif-export verify {folder}`")
    return result
