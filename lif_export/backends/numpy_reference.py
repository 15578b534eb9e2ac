"""The independent NumPy implementation of the semantics (:mod:`lif_export.reference`) as a backend."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..export.spec import NeuronSpec
from ..reference import reference_sequence
from .base import Backend, Context, Tensors, neuron_result, register


class NumpyReference(Backend):
    """``arithmetic="fused"`` or ``"reordered"`` give deliberately wrong variants (see
    :mod:`lif_export.reference`) that the conformance checker must catch."""

    def __init__(self, spec: NeuronSpec, arithmetic: str = "spec"):
        self.params = spec.numpy_params()
        self.arithmetic = arithmetic
        self.name = "numpy/reference" if arithmetic == "spec" else f"numpy/{arithmetic}"

    def run(self, x: np.ndarray, states: Tensors) -> Tensors:
        p = self.params
        spike, v, trace = reference_sequence(
            x, states["v"], p["beta"], p["threshold"], p["v_reset"], p["reset"], self.arithmetic
        )
        return neuron_result(spike, v, trace)


@register("numpy")
def variants(ctx: Context) -> Iterator[Backend]:
    if ctx.is_network:
        return
    yield NumpyReference(NeuronSpec.from_json(ctx.manifest["neuron"]))
