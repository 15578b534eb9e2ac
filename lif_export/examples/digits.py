"""A spiking network trained on scikit-learn's bundled 8x8 digits, exported and verified.

The pixel values (0..16) are scaled by 1/16, which is exact, and fed as a
constant input current for ``steps`` time steps. The network::

    ExactLinear(64, 128) -> LIF(128) -> ExactLinear(128, 96) -> LIF(96)
      -> ExactLinear(96, 64) -> SynapticLIF(64) -> ExactLinear(64, 10) -> LeakyIntegrator(10)

is trained with surrogate gradients (cross-entropy on the readout potential
averaged over time); the prediction is the arg-max of that average. The data
ships inside scikit-learn: nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..network import ExactLinear, LeakyIntegratorLayer, LIFLayer, SpikingSequential, SynapticLIFLayer


@dataclass
class DigitsData:
    x_train: torch.Tensor  # [N, 64] in [0, 1], multiples of 1/16
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_data(seed: int = 0) -> DigitsData:
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise RuntimeError("the digits example needs scikit-learn: pip install 'lif_export[examples]'") from err
    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0
    x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.25, random_state=seed,
                                                        stratify=digits.target)
    return DigitsData(torch.from_numpy(x_train), torch.from_numpy(y_train).long(),
                      torch.from_numpy(x_test), torch.from_numpy(y_test).long())


def build_network() -> SpikingSequential:
    return SpikingSequential(
        ExactLinear(64, 128), LIFLayer(128, beta=0.9),
        ExactLinear(128, 96), LIFLayer(96, beta=0.9),
        ExactLinear(96, 64), SynapticLIFLayer(64, alpha=0.7, beta=0.9),
        ExactLinear(64, 10), LeakyIntegratorLayer(10, beta=0.9),
    )


def encode(x: torch.Tensor, steps: int) -> torch.Tensor:
    """``[N, 64]`` images -> ``[steps, N, 64]`` constant input currents."""
    return x.unsqueeze(0).expand(steps, -1, -1).contiguous()


def readout(net: SpikingSequential, x: torch.Tensor, steps: int) -> torch.Tensor:
    """The readout potential averaged over time, ``[N, 10]`` (the logits)."""
    out, _ = net.forward_sequence(encode(x, steps), net.initial_state(x.shape[0], x.dtype))
    return out.mean(0)


def predictions_from_output(out: np.ndarray) -> np.ndarray:
    """Class per sample from a ``[steps, N, 10]`` readout trace (arg-max of its time average)."""
    return out.astype(np.float64).mean(axis=0).argmax(axis=1)


def train(data: DigitsData, epochs: int = 15, steps: int = 12, batch: int = 64, lr: float = 2e-3,
          seed: int = 0, progress: bool = True) -> tuple[SpikingSequential, list[float]]:
    """Train with Adam; returns the network (eval mode) and the loss of every epoch."""
    torch.manual_seed(seed)
    net = build_network()
    optimiser = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    generator = torch.Generator().manual_seed(seed)
    bar = tqdm(range(epochs), desc="training", unit="epoch", disable=not progress)
    for _ in bar:
        order = torch.randperm(len(data.x_train), generator=generator)
        total = 0.0
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(readout(net, data.x_train[idx], steps), data.y_train[idx])
            loss.backward()
            optimiser.step()
            total += loss.item() * len(idx)
        losses.append(total / len(order))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    return net.eval(), losses


def accuracy(net: SpikingSequential, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    with torch.no_grad():
        return int((readout(net, x, steps).argmax(1) == y).sum()) / len(y)


def raster(net: SpikingSequential, image: torch.Tensor, label: int, steps: int, path: Path) -> Path:
    """Spike raster of both LIF layers and the readout potential for one example (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_write

    with torch.no_grad():
        x = encode(image[None], steps)
        state = net.initial_state(1, x.dtype)
        hidden: dict[int, list[torch.Tensor]] = {1: [], 3: []}
        readouts = []
        for x_t in x:
            outputs, state = net.step_with_layer_outputs(x_t, state)
            for i in hidden:
                hidden[i].append(outputs[i][0])
            readouts.append(outputs[-1][0])
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4), gridspec_kw={"width_ratios": [1, 2, 2, 2]})
    axes[0].imshow(image.reshape(8, 8).numpy(), cmap="gray_r")
    axes[0].set_title(f"input (label {label})")
    axes[0].axis("off")
    for ax, (i, spikes) in zip(axes[1:3], hidden.items(), strict=True):
        s = torch.stack(spikes).T.numpy()
        n, t = np.nonzero(s)
        ax.scatter(t, n, s=4, marker="|", color="black")
        ax.set_title(f"layer {i} spikes ({int(s.sum())})")
        ax.set_xlabel("time step")
        ax.set_ylabel("neuron")
        ax.set_xlim(-0.5, steps - 0.5)
    r = torch.stack(readouts).numpy()
    for k in range(10):
        axes[3].plot(r[:, k], lw=2.5 if k == label else 0.8, label=str(k) if k == label else None)
    axes[3].set_title("readout potential (label bold)")
    axes[3].set_xlabel("time step")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path


def run_example(out_dir: Path, epochs: int, steps: int, figure: Path | None, seed: int = 0,
                report=print, progress: bool = True) -> dict:
    """Train, export, verify, and compare predictions on the whole test set across backends.

    Returns a summary: accuracy, per-backend accuracy and agreement, verification result.
    """
    import subprocess

    from ..backends.base import Context
    from ..backends.cpp_runners import RUNNERS, cpp_build_dir
    from ..backends.onnxruntime import OrtArtifact
    from ..backends.torchscript import TorchScriptArtifact
    from ..conformance.verify import verify_dir
    from ..export import export_network
    from ..export.manifest import load_manifest

    data = load_data(seed)
    net, losses = train(data, epochs=epochs, steps=steps, seed=seed, progress=progress)
    test_acc = accuracy(net, data.x_test, data.y_test, steps)
    report(f"test accuracy {test_acc:.4f} on {len(data.y_test)} held-out digits "
           f"(train {accuracy(net, data.x_train, data.y_train, steps):.4f}); loss {losses[0]:.3f} -> {losses[-1]:.3f}")

    x_test = encode(data.x_test, steps).numpy()
    export_network(net, (64,), out_dir, report=report,
                   extra_cases={"test_set": ("the whole digits test set", x_test)})
    verification = verify_dir(out_dir, progress=progress)
    report(f"verify: {len(verification.comparisons)} runs, {len(verification.mismatches)} mismatching")

    with torch.no_grad():
        out, _ = net.forward_sequence(torch.from_numpy(x_test), net.initial_state(x_test.shape[1], torch.float32))
    eager = predictions_from_output(out.numpy())
    labels = data.y_test.numpy()
    ctx = Context(Path(out_dir), load_manifest(out_dir))
    zero_states = {n: np.zeros((x_test.shape[1], *s.shape[1:]), np.float32)
                   for n, s in zip(net.state_names, net.initial_state(1, torch.float32), strict=True)}
    rows = [("eager PyTorch", eager)]
    for backend in [TorchScriptArtifact(ctx, "torchscript_sequence"), TorchScriptArtifact(ctx, "torchscript_step"),
                    OrtArtifact(ctx, "onnx_sequence", "all", 1), OrtArtifact(ctx, "onnx_step", "all", 1)]:
        rows.append((backend.name, predictions_from_output(backend.run(x_test, dict(zero_states))["out"])))
    summary: dict[str, Any] = {"test_accuracy": test_acc, "verify_ok": verification.ok, "backends": {}, "cpp": {}}
    for name, predicted in rows:
        same = bool(np.array_equal(predicted, eager))
        acc = int((predicted == labels).sum()) / len(labels)
        summary["backends"][name] = {"accuracy": acc, "identical_to_eager": same}
        report(f"  {name:<45} accuracy {acc:.4f}  predictions identical to eager: {'yes' if same else 'NO'}")
    for runner in RUNNERS:
        binary = cpp_build_dir() / runner
        if not binary.exists():
            summary["cpp"][runner] = "not built (scripts/build_cpp.sh)"
            report(f"  C++ {runner}: not built (scripts/build_cpp.sh), skipped")
            continue
        result = subprocess.run([str(binary), str(out_dir), "--case", "test_set"], capture_output=True, text=True)
        ok = result.returncode == 0
        summary["cpp"][runner] = "identical" if ok else "MISMATCH"
        report(f"  C++ {runner}: readout on the whole test set bit-identical to eager: {'yes' if ok else 'NO'}")
    if figure is not None:
        index = int(np.flatnonzero(labels == labels[0])[0])
        raster(net, data.x_test[index], int(labels[index]), steps, figure)
        report(f"wrote {figure}")
    return summary
