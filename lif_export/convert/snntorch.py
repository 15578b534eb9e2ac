"""``from_snntorch``: an snnTorch model as a :class:`~lif_export.network.SpikingSequential` that gives
the same spikes, bit for bit, in eager PyTorch and TorchScript.

snnTorch's step (``snntorch/_neurons/leaky.py``; ``r = H(mem - threshold)`` of the stored potential)::

    mem = beta.clamp(0, 1) * mem + x             # "subtract": then  - r * threshold
    spk = H(mem - threshold)                     # H(z) = (z > 0): the same as mem > threshold
    reset_delay=False only:  mem = mem - (spk - r) * threshold      # "subtract"
                             mem = mem - (spk - r) * mem            # "zero"

With ``reset_delay=True`` (the default) the reset lands one step late: :class:`LIFLayer`'s
``reset_timing="next_step"``. With ``reset_delay=False`` the zero reset is our same-step select (from
the zero state ``r`` is always 0); the subtract reset tests the stored, already reset potential again
(``r`` can be 1 when it is still above the threshold), which is ``reset_timing="same_step_retest"``.
The mappings are exact on finite inputs; ``docs/nir.md`` ("snnTorch") lists the differences on
non-finite inputs and signed zeros. The ordinary torch layers between the neurons are kept as they
are (so their arithmetic is snnTorch's); :func:`lif_export.network.to_exact` makes them exportable.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InvalidTypeError, InvalidValueError
from ..network import LeakyIntegratorLayer, LIFLayer, RecurrentLIFLayer, SpikingSequential, SynapticLIFLayer
from ..network.exact import GRID_BITS, WEIGHT_BOUND, ExactLinear
from ..parameters import MIN_LEARNED_THRESHOLD
from .chain import LayerChain, per_neuron

#: Largest recurrent layer whose float32 sums of grid weights are exact (16 * N * 2**12 <= 2**24).
MAX_EXACT_RECURRENT = 256


def import_snntorch() -> ModuleType:
    try:
        import snntorch
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("from_snntorch needs snnTorch: pip install 'lif_export[convert]'") from err
    return snntorch


def _refuse(name: str, module: nn.Module, why: str) -> None:
    raise InvalidValueError(f"{name} ({type(module).__name__}): {why}")


def _check_neuron(name: str, m: Any) -> None:
    """Refuse what the layers do not compute: inhibition, state quantization, graded spikes, a
    surrogate whose forward pass is not the step ``z > 0``."""
    if m.inhibition:
        _refuse(name, m, "inhibition=True (winner-take-all spiking) has no lif_export counterpart")
    if m.state_quant:
        _refuse(name, m, "state_quant quantizes the potential; lif_export has no such layer")
    if not torch.all(m.graded_spikes_factor == 1):
        _refuse(name, m, f"graded_spikes_factor = {m.graded_spikes_factor.tolist()} != 1 (lif_export spikes are 1.0)")
    probe = torch.tensor([float("-inf"), -1.0, -1e-45, -0.0, 0.0, 1e-45, 1.0, float("inf"), float("nan")])
    with torch.no_grad():
        forward = m.spike_grad(probe)
    if not torch.equal(forward, (probe > 0).to(forward.dtype)):
        _refuse(name, m, f"its spike_grad's forward pass is {forward.tolist()} on {probe.tolist()}, not the step z > 0")


def _decay(m: Any, attr: str) -> Tensor:
    return getattr(m, attr).detach().clamp(0, 1)  # snnTorch clamps every forward


def _threshold(name: str, m: Any) -> Tensor:
    threshold = m.threshold.detach()
    low = MIN_LEARNED_THRESHOLD if isinstance(m.threshold, nn.Parameter) else 0.0
    if not (torch.isfinite(threshold).all() and (threshold > low).all()):
        _refuse(name, m, f"threshold {threshold.tolist()} must be finite and > {low:g} (lif_export's range; a learned "
                "threshold is clamped there in forward)")
    return threshold


def _lif_timing(name: str, m: Any, retest: bool, report: Callable[[str], None]) -> str:
    reset = m.reset_mechanism
    if reset == "none":
        return "same_step"
    if m.reset_delay:
        return "next_step"
    if reset == "subtract":
        if retest:
            return "same_step_retest"
        report(f"{name}: reset_delay=False subtract reset mapped to reset_timing='same_step' (retest=False): "
               "spikes differ from snnTorch's where the reset potential is still above the threshold")
    return "same_step"


def _common(name: str, m: Any, shape: tuple[int, ...]) -> dict[str, Any]:
    return {"beta": per_neuron(name, "beta", _decay(m, "beta"), shape),
            "threshold": per_neuron(name, "threshold", _threshold(name, m), shape),
            "learn_beta": isinstance(m.beta, nn.Parameter), "learn_threshold": isinstance(m.threshold, nn.Parameter)}


def _leaky(name: str, m: Any, shape: tuple[int, ...], retest: bool, report: Callable[[str], None]) -> list[nn.Module]:
    return [LIFLayer(shape, **_common(name, m, shape), reset=m.reset_mechanism,
                     reset_timing=_lif_timing(name, m, retest, report))]


def _synaptic(name: str, m: Any, shape: tuple[int, ...], retest: bool,
              report: Callable[[str], None]) -> list[nn.Module]:
    """Same step: one :class:`SynapticLIFLayer`. Otherwise the synaptic current is a leaky integrator
    feeding a LIF (the same arithmetic: ``syn = alpha*syn + x``, then ``mem = beta*mem + syn``)."""
    alpha = per_neuron(name, "alpha", _decay(m, "alpha"), shape)
    if isinstance(m.alpha, nn.Parameter):
        report(f"{name}: a learned alpha is converted as a fixed value (the forward pass is the same)")
    if m.reset_mechanism == "zero" and m.reset_delay:
        _refuse(name, m, "Synaptic with reset_mechanism='zero' and reset_delay=True sets the whole potential to 0 on "
                "the step after a spike, dropping that step's input; lif_export has no such reset (Leaky's delayed "
                "zero reset, LIFLayer's reset_timing='next_step', resets before the input is added)")
    timing = _lif_timing(name, m, retest, report)
    if timing == "same_step":
        return [SynapticLIFLayer(shape, alpha=alpha, **_common(name, m, shape), reset=m.reset_mechanism)]
    return [LeakyIntegratorLayer(shape, beta=alpha),
            LIFLayer(shape, **_common(name, m, shape), reset=m.reset_mechanism, reset_timing=timing)]


def _recurrent_weight(name: str, m: Any, size: int) -> Tensor:
    """The recurrent weights as a matrix, refused unless snnTorch's float32 sums of them are exact."""
    rec = m.recurrent
    if m.all_to_all:
        if not isinstance(rec, nn.Linear):
            _refuse(name, m, f"a {type(rec).__name__} recurrence has no lif_export layer (RecurrentLIFLayer is dense)")
        if rec.bias is not None and torch.any(rec.bias != 0):
            _refuse(name, m, "its recurrent Linear has a nonzero bias, which snnTorch adds after W s; "
                    "RecurrentLIFLayer has no recurrent bias")
        weight = rec.weight.detach().float()
        if size > MAX_EXACT_RECURRENT:
            _refuse(name, m, f"{size} neurons: snnTorch's float32 sums of {size} recurrent weights round, "
                    f"RecurrentLIFLayer's are exact (identical only up to {MAX_EXACT_RECURRENT} neurons)")
    else:
        weight = torch.diag(torch.broadcast_to(m.V.detach().float(), (size,)))
    grid = weight * 2.0**GRID_BITS
    if not (torch.equal(grid, torch.round(grid)) and weight.abs().max() <= WEIGHT_BOUND):
        _refuse(name, m, f"its recurrent weights are not on the exact grid (multiples of 2^-{GRID_BITS} within "
                f"+-{WEIGHT_BOUND:g}), so RecurrentLIFLayer's exact sum differs from snnTorch's; round them first "
                "(torch.round(w * 4096) / 4096) and the two agree")
    return weight


def _rleaky(name: str, m: Any, shape: tuple[int, ...], retest: bool,
            report: Callable[[str], None]) -> list[nn.Module]:
    if len(shape) != 1:
        _refuse(name, m, f"a recurrent layer needs 1-D inputs, got per-sample shape {shape}")
    if m.reset_mechanism == "subtract" or (m.reset_mechanism == "zero" and m.reset_delay):
        _refuse(name, m, f"reset_mechanism={m.reset_mechanism!r} with reset_delay={m.reset_delay}: RecurrentLIFLayer "
                "resets in the step it fires (snnTorch's zero reset with reset_delay=False, or no reset)")
    layer = RecurrentLIFLayer(shape[0], **_common(name, m, shape), reset=m.reset_mechanism)
    recurrent = ExactLinear(shape[0], shape[0], bias=False)
    with torch.no_grad():
        recurrent.weight.copy_(_recurrent_weight(name, m, shape[0]))
    layer.recurrent = recurrent
    return [layer]


def from_snntorch(model: nn.Module | Sequence[nn.Module], feature_shape: tuple[int, ...] | None = None, *,
                  retest: bool = True, report: Callable[[str], None] | None = print) -> SpikingSequential:
    """An snnTorch model as a :class:`~lif_export.network.SpikingSequential` with the same spikes.

    Args:
        model: an ``nn.Sequential`` (snnTorch neurons with ``init_hidden=True`` between torch layers), or
            the modules in the order the model's ``forward`` calls them.
        feature_shape: the per-sample input shape; inferred when the first layer is an ``nn.Linear``.
        retest: map ``reset_delay=False`` with the subtract reset to ``reset_timing="same_step_retest"``
            (snnTorch's arithmetic, bit for bit); ``False`` uses ``"same_step"`` (docs/semantics.md),
            whose spikes differ where the reset potential is still above the threshold.
        report: called with a line for each choice that changes training but not the forward pass.

    Maps ``Leaky`` (every reset mechanism, both reset timings, learned beta and threshold),
    ``Synaptic`` (all but the delayed zero reset), ``RLeaky`` (same-step zero reset or none, recurrent
    weights on the exact grid). Other torch layers are kept as they are; other snnTorch neurons and
    options that change the forward pass (inhibition, state quantization, graded spikes, a surrogate
    whose forward is not the step) raise ``ValueError`` naming the layer.
    """
    snn = import_snntorch()
    report = report or (lambda line: None)
    if isinstance(model, (nn.Sequential, nn.ModuleList, list, tuple)):
        modules = list(model)
    else:
        raise InvalidTypeError(f"model must be an nn.Sequential or the list of its modules in forward order, got "
                        f"{type(model).__name__} (a custom forward cannot be read: list its modules)")
    chain = LayerChain(feature_shape, modules[0] if modules else None)
    converters = {snn.Leaky: _leaky, snn.Synaptic: _synaptic, snn.RLeaky: _rleaky}
    for i, m in enumerate(modules):
        name = f"layer {i}"
        convert = converters.get(type(m))
        if convert is not None:
            _check_neuron(name, m)
            layers = convert(name, m, chain.neuron_shape(name), retest, report)
        elif isinstance(m, snn.SpikingNeuron):
            raise InvalidValueError(
                f"{name}: snnTorch's {type(m).__name__} has no lif_export layer (Leaky, Synaptic and "
                             "RLeaky are converted)")
        else:
            layers = [copy.deepcopy(m)]
        for layer in layers:
            chain.add(layer)
    return chain.network()
