"""The LIF layer: the neuron of ``docs/semantics.md`` under the state protocol. State: ``v``."""

import torch
from torch import Tensor

from .. import validation
from ..errors import InvalidValueError
from ..fast.dispatch import fast_sequence
from ..functional import integrate, lif_step_unchecked
from .protocol import SpikingLayer

#: When the reset acts (``docs/semantics.md``, "Reset timing").
RESET_TIMINGS: tuple[str, ...] = ("same_step", "next_step", "same_step_retest")


class LIFLayer(SpikingLayer):
    r"""``size`` leaky integrate-and-fire neurons.

    One step, for input ``x`` and potential ``v`` (``reset_timing="same_step"``, the default):

    .. math::
        u = \beta v + x,\qquad s = \mathbb{1}[u > \vartheta],\qquad
        v' = \text{reset}(u, s)\ \ (\text{"zero": } v_\text{reset} \text{ where } s;\
        \text{"subtract": } u - s\vartheta;\ \text{"none": } u)

    With ``reset_timing="next_step"`` a spike lowers the potential one step later (snnTorch's
    ``reset_delay=True``): the stored potential is not reset, and the next step resets it first if it
    is above the threshold (which is exactly when it fired). ``"same_step_retest"`` (subtract reset
    only) is snnTorch's ``reset_delay=False``: the same-step reset, plus that test of the stored
    potential at the next step. The arithmetic of each is in ``docs/semantics.md``, "Reset timing".

    Training through :meth:`SpikingSequential.forward_sequence <lif_export.network.SpikingSequential>`
    (eager), a layer with the same-step reset and a fixed threshold runs its whole sequence through
    the hand-written backward through time of :mod:`lif_export.fast` (:meth:`train_sequence`), with
    the bits and gradients of the step-by-step loop; the others train through autograd per step.

    Args:
        size: neurons per sample: an int, or a feature-map shape such as ``(C, H, W)``.
        beta: decay in ``[0, 1]``, scalar or of shape ``size``. Default ``0.9``.
        threshold: finite, ``> 0``, scalar or per neuron. Default ``1.0``.
        v_reset: finite reset potential. Default ``0.0``.
        reset: ``"zero"``, ``"subtract"`` or ``"none"``. Default ``"zero"``.
        reset_timing: ``"same_step"`` (default), ``"next_step"`` or ``"same_step_retest"``.
        learn_beta, learn_threshold: make them ``nn.Parameter`` (clamped in forward).
        surrogate, surrogate_slope: the surrogate gradient (:mod:`lif_export.surrogate`).
        dtype: dtype of the parameters (floating point).

    Shape:
        - x: ``[batch, *size]``; state ``[v]``, each ``[batch, *size]``.
        - output (spike): ``[batch, *size]``, dtype of ``x``.

    Example::

        >>> layer = LIFLayer(3, beta=0.5, threshold=0.8)
        >>> spike, state = layer.step(torch.full((2, 3), 0.9), layer.initial_state(2, torch.float32))
        >>> spike
        tensor([[1., 1., 1.],
                [1., 1., 1.]])
    """

    __constants__ = [*SpikingLayer.__constants__, "reset_timing"]
    reset_timing: str

    def __init__(self, size: int | tuple[int, ...], *, beta: validation.ParamLike = 0.9,
                 threshold: validation.ParamLike = 1.0, v_reset: validation.ParamLike = 0.0, reset: str = "zero",
                 reset_timing: str = "same_step", learn_beta: bool = False, learn_threshold: bool = False,
                 dtype: torch.dtype | None = None, **surrogate: object) -> None:
        super().__init__(size, ["v"], beta, threshold, v_reset, reset, learn_beta, learn_threshold, dtype, surrogate)
        if not isinstance(reset_timing, str) or reset_timing not in RESET_TIMINGS:
            raise InvalidValueError(f"reset_timing must be one of {list(RESET_TIMINGS)}, got {reset_timing!r}")
        if reset_timing == "same_step_retest" and reset != "subtract":
            raise InvalidValueError(f"reset_timing='same_step_retest' needs reset='subtract', got reset={reset!r} "
                             "(from the zero state the other resets never leave the potential above the threshold)")
        self.reset_timing = reset_timing

    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        beta, threshold, v_reset = self.neuron_parameters()
        v = state[0]
        if self.reset_timing == "same_step":
            spike, v_next = lif_step_unchecked(x, v, beta, threshold, v_reset, self.reset, self.surrogate,
                                               self.surrogate_slope)
            return spike, [v_next]
        pending = v > threshold  # the previous step's spike (next_step); the stored potential still above (retest)
        if self.reset == "zero":
            u = integrate(x, torch.where(pending, v_reset, v), beta)
        elif self.reset == "subtract":
            u = integrate(x, v, beta) - pending.to(x.dtype) * threshold
        else:
            u = integrate(x, v, beta)
        spike = (u > threshold).to(x.dtype)
        v_next = u
        if self.reset_timing == "same_step_retest":
            v_next = u - (spike - pending.to(x.dtype)) * threshold
        return self.with_surrogate(spike, u, threshold), [v_next]

    @torch.jit.unused
    def train_sequence_applies(self, dtype: torch.dtype) -> bool:
        """Whether :meth:`train_sequence` runs for inputs of ``dtype`` (``T > 0``)."""
        return self.reset_timing == "same_step" and not self.learn_threshold and dtype in (torch.float32,
                                                                                            torch.float64)

    @torch.jit.unused
    def train_sequence(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]] | None:
        """A whole sequence ``x[T, batch, *size]`` through the hand-written backward through time of
        :mod:`lif_export.fast`: ``(spikes[T, batch, *size], [v_T])``, the bits of ``T`` calls of
        :meth:`step` and (for :class:`~lif_export.network.SpikingSequential`'s training path) the
        gradients autograd computes through them. ``None`` where that does not hold or apply: a
        ``reset_timing`` other than ``"same_step"``, a learned threshold (per step, autograd sums its
        surrogate gradient in another order than over a whole sequence), ``T = 0``, a dtype other than
        float32/float64. Eager only."""
        if not self.train_sequence_applies(x.dtype) or x.dim() < 1 or x.size(0) == 0:
            return None
        beta, threshold, v_reset = self.neuron_parameters()
        result = fast_sequence(x, state[0], beta, threshold, v_reset, self.reset, self.surrogate,
                               self.surrogate_slope, False)
        if result is None:
            return None
        spikes, v_next, _ = result
        return spikes, [v_next]

    def extra_repr(self) -> str:
        timing = "" if self.reset_timing == "same_step" else f", reset_timing={self.reset_timing}"
        return super().extra_repr() + timing
