"""A short training run with the default surrogate lowers the loss clearly."""

import torch
from torch import nn

from lif_export import LIFSequence


def make_task(n: int, features: int, classes: int, generator: torch.Generator):
    """Each class is a noisy version of its own random rate pattern."""
    prototypes = torch.rand(classes, features, generator=generator)
    labels = torch.randint(0, classes, (n,), generator=generator)
    rates = (prototypes[labels] + 0.15 * torch.randn(n, features, generator=generator)).clamp(0, 1)
    return rates, labels


class SpikingClassifier(nn.Module):
    def __init__(self, features: int, hidden: int, classes: int):
        super().__init__()
        self.encoder = nn.Linear(features, hidden)
        self.lif = LIFSequence(beta=0.9, threshold=1.0, learn_beta=True)
        self.readout = nn.Linear(hidden, classes)

    def forward(self, rates: torch.Tensor, steps: int) -> torch.Tensor:
        current = self.encoder(rates).expand(steps, -1, -1)  # constant current over T steps
        spikes, _ = self.lif(current)
        return self.readout(spikes.mean(0))


def test_training_lowers_the_loss():
    g = torch.Generator().manual_seed(1)
    x, y = make_task(256, 20, 4, g)
    model = SpikingClassifier(20, 64, 4)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(60):
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(model(x, steps=20), y)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    accuracy = (model(x, steps=20).argmax(1) == y).float().mean().item()
    assert accuracy > 0.8
    beta = model.lif.neuron_parameters()[0]
    assert 0.0 <= beta.item() <= 1.0
