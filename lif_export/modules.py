"""``nn.Module`` wrappers over :mod:`lif_export.functional`.

All three modules compile with ``torch.jit.script`` and are bit-identical to
their eager form and to each other:

* :class:`LIFNeuron` - the stateful API (hidden ``potential`` and
  ``spike`` buffers), plus the explicit-state ``step`` method.
* :class:`LIFCell` - ``(x, v) -> (spike, v_next)``, no hidden state.
* :class:`LIFSequence` - ``(x[T, ...], v0) -> (spikes[T, ...], v_T)``.
"""


import warnings
from typing import Any

import torch
from torch import Tensor, nn

from . import validation
from .errors import InvalidTypeError
from .fast.dispatch import fast_sequence
from .fast.simulate import output_buffer, simulate_script
from .functional import lif_sequence, lif_step
from .parameters import (
    MIN_LEARNED_THRESHOLD,
    LIFParameterAttributes,
    check_loaded,
    register_lif_parameters,
    surrogate_options,
)

__all__ = ["MIN_LEARNED_THRESHOLD", "LIFCell", "LIFNeuron", "LIFParameters", "LIFSequence"]

#: The order of the positional arguments these modules took before they became keyword-only.
_LEGACY_POSITIONAL = ("threshold", "beta", "v_reset", "reset")


class LIFParameters(LIFParameterAttributes, nn.Module):
    r"""Neuron parameters shared by every LIF module (``docs/semantics.md``).

    The dynamics of one time step are

    .. math::
        u_t = \beta v_{t-1} + x_t,\qquad
        s_t = \mathbb{1}[u_t > \vartheta],\qquad
        v_t = \begin{cases} v_\text{reset} & s_t = 1 \text{ (reset="zero")}\\
                            u_t - s_t \vartheta & \text{(reset="subtract")}\\
                            u_t & \text{(reset="none")} \end{cases}

    All arguments are keyword-only, in the same order as every network layer's
    (:class:`~lif_export.network.LIFLayer` takes its ``size`` first).

    Args:
        beta: membrane decay :math:`\beta` in ``[0, 1]``; float or per-neuron
            tensor broadcastable to the input. Default ``0.9``.
        threshold: firing threshold :math:`\vartheta`, finite and ``> 0``; float or
            per-neuron tensor. Default ``1.0``.
        v_reset: reset potential for ``reset="zero"``, finite. Default ``0.0``.
        reset: ``"zero"`` (default), ``"subtract"`` or ``"none"``.
        learn_beta: make ``beta`` an ``nn.Parameter`` (clamped to ``[0, 1]`` in
            forward).
        learn_threshold: make ``threshold`` an ``nn.Parameter`` (clamped to
            ``>= 1e-6`` in forward).
        surrogate: surrogate-gradient name, default ``"fast_sigmoid"``.
        surrogate_slope: its slope/scale; ``None`` takes the surrogate's default
            (``surrogate_alpha`` is the deprecated name).
        dtype: dtype of the parameters, floating point; default ``torch.get_default_dtype()``.
    """

    __constants__ = [
        "reset", "surrogate", "surrogate_slope", "learn_beta", "learn_threshold", "min_threshold"
    ]
    def __init__(
        self,
        *args: object,
        beta: validation.ParamLike = 0.9,
        threshold: validation.ParamLike = 1.0,
        v_reset: validation.ParamLike = 0.0,
        reset: str = "zero",
        learn_beta: bool = False,
        learn_threshold: bool = False,
        dtype: torch.dtype | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__()
        given: dict[str, Any] = {"beta": beta, "threshold": threshold, "v_reset": v_reset, "reset": reset}
        if args:
            given.update(_legacy_positional(type(self).__name__, args, kwargs))
        surrogate = surrogate_options(kwargs)
        if kwargs:
            raise InvalidTypeError(f"{type(self).__name__} got unexpected keyword arguments {sorted(kwargs)}")
        register_lif_parameters(self, given["beta"], given["threshold"], given["v_reset"], given["reset"],
                                learn_beta, learn_threshold, surrogate["surrogate"], surrogate["surrogate_slope"],
                                dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        check_loaded(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        def show(t: Tensor) -> str:
            return f"{t.item():g}" if t.dim() == 0 else f"per-neuron{tuple(t.shape)}"

        return (
            f"threshold={show(self.threshold)}, beta={show(self.beta)}, "
            f"v_reset={show(self.v_reset)}, reset={self.reset!r}, surrogate={self.surrogate!r}"
        )

    def _step(self, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        beta, threshold, v_reset = self.neuron_parameters()
        return lif_step(x, v, beta, threshold, v_reset, self.reset, self.surrogate, self.surrogate_slope)


def _legacy_positional(owner: str, args: tuple, kwargs: dict) -> dict[str, object]:
    """Map the old positional ``(threshold, beta, v_reset, reset)`` with a deprecation warning."""
    if len(args) > len(_LEGACY_POSITIONAL):
        raise InvalidTypeError(f"{owner} takes keyword arguments only, got {len(args)} positional ones")
    warnings.warn(f"positional arguments to {owner} are deprecated (they were threshold, beta, v_reset, reset); "
                  f"pass them by keyword: {owner}(beta=..., threshold=...)", DeprecationWarning, stacklevel=4)
    return dict(zip(_LEGACY_POSITIONAL, args, strict=False))


class LIFCell(LIFParameters):
    r"""One LIF step with explicit state: ``forward(x, v) -> (spike, v_next)``.

    Shape:
        - x: ``[*]`` input current (floating point).
        - v: ``[*]`` (or broadcastable) membrane potential; ``None`` means zeros.
        - spike, v_next: ``[*]``, dtype of ``x``.

    Example::

        >>> cell = LIFCell(threshold=1.0, beta=0.9)
        >>> v = torch.zeros(4)
        >>> for x in torch.full((5, 4), 0.3):
        ...     spike, v = cell(x, v)
    """

    def forward(self, x: Tensor, v: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if v is None:
            v = torch.zeros_like(x)
        return self._step(x, v)


class LIFSequence(LIFParameters):
    r"""LIF over a whole sequence: ``forward(x[T, ...], v) -> (spikes[T, ...], v_T)``.

    Equal, bit for bit, to ``T`` calls of :class:`LIFCell`; feeding a long
    stream in chunks while carrying ``v`` equals one unsplit call.

    Shape:
        - x: ``[T, *]`` input currents, time first.
        - v: ``[*]`` (or broadcastable) initial potential; ``None`` means zeros.
          (Named ``v`` like the state input of every exported graph.)
        - spikes: ``[T, *]``; v_T: ``[*]``.

    ``forward_trace`` also returns the potential after every step, ``[T, *]``.

    Without gradients (``torch.no_grad()``, or nothing that needs one) both run an in-place loop, in
    TorchScript too (PyTorch operations only); ``forward(x, v, out=buffer)`` writes the spikes into a
    caller's ``[T, *]`` buffer. With gradients: the hand-written backward through time in eager mode
    (:mod:`lif_export.fast`), autograd through :func:`~lif_export.functional.lif_sequence` when scripted.

    Example::

        >>> seq = LIFSequence(beta=0.8, reset="subtract")
        >>> spikes, v_T = seq(torch.rand(100, 32, 10))
        >>> spikes, v_T, v_trace = seq.forward_trace(torch.rand(100, 32, 10))
    """

    def _run(self, x: Tensor, v0: Tensor | None, return_trace: bool,
             out: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor | None]:
        if v0 is None:
            if x.dim() < 1:
                raise ValueError("x must have a leading time dimension [T, ...], got a 0-dim tensor")
            v0 = torch.zeros(x.shape[1:], dtype=x.dtype, device=x.device)
        beta, threshold, v_reset = self.neuron_parameters()
        needs_grad = torch.is_grad_enabled() and (
            x.requires_grad or v0.requires_grad or beta.requires_grad or threshold.requires_grad)
        if out is not None and needs_grad:
            raise ValueError("out is for runs without gradients (under torch.no_grad(), or with an input and "
                             "parameters that need none): autograd cannot record the writes into it")
        if not torch.jit.is_scripting():
            fast = self._fast_run(x, v0, beta, threshold, v_reset, return_trace, out)
            if fast is not None:
                return fast
        elif (x.dtype == torch.float32 or x.dtype == torch.float64) and not needs_grad:
            # Scripted, no gradient needed: the in-place loop of lif_export.fast (PyTorch operations only,
            # so a saved module runs it anywhere, C++ included), the same bits as the loop below.
            return simulate_script(x, v0, beta, threshold, v_reset, self.reset, return_trace, out)
        spikes, v, trace = lif_sequence(
            x, v0, beta, threshold, v_reset, self.reset, self.surrogate, self.surrogate_slope, return_trace
        )
        if out is not None:
            spikes = output_buffer(x, out).copy_(spikes)
        return spikes, v, trace

    @torch.jit.unused
    def _fast_run(
        self, x: Tensor, v0: Tensor, beta: Tensor, threshold: Tensor, v_reset: Tensor, return_trace: bool,
        out: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor | None] | None:
        # Eager only: the same bits through lif_export.fast (in-place forward, hand-written BPTT).
        return fast_sequence(x, v0, beta, threshold, v_reset, self.reset, self.surrogate, self.surrogate_slope,
                             return_trace, out)

    def forward(self, x: Tensor, v: Tensor | None = None, out: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(spikes[T, *], v_T)``; ``out``, optional, a ``[T, *]`` tensor of ``x``'s dtype the spikes are
        written into (and returned), for runs without gradients: a buffer reused across calls saves
        allocating (and page-faulting) a new output every time."""
        spikes, v_final, _ = self._run(x, v, False, out)
        return spikes, v_final

    @torch.jit.export
    def forward_trace(self, x: Tensor, v: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        spikes, v_final, trace = self._run(x, v, True)
        assert trace is not None
        return spikes, v_final, trace


class LIFNeuron(LIFParameters):
    r"""The stateful LIF neuron: ``forward(input_current) -> spike``.

    Keeps the membrane potential in the buffer ``potential`` and the last
    output in the buffer ``spike``. The state takes the input's shape on the
    first call (and after :meth:`reset_state`), persists across calls,
    survives ``state_dict()``/``load_state_dict()`` and ``.to(dtype)``.
    Feeding an input of another shape without a reset is an error.

    :meth:`step` is the same neuron with explicit state, ``(x, v) ->
    (spike, v_next)``; it is exported to TorchScript, so a scripted
    ``LIFNeuron`` offers both. The exporters use it to lift the hidden state
    into explicit graph inputs and outputs.

    Shape:
        - input_current: ``[*]`` floating point.
        - output (spike): ``[*]``, dtype of the input.

    Example::

        >>> neuron = LIFNeuron(threshold=1.0, beta=0.9)
        >>> spikes = [neuron(torch.full((3,), 0.5)) for _ in range(10)]
        >>> neuron.potential.shape
        torch.Size([3])
        >>> neuron.reset_state()
    """

    potential: Tensor
    spike: Tensor

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        dtype = self.beta.dtype
        self.register_buffer("potential", torch.zeros(0, dtype=dtype))
        self.register_buffer("spike", torch.zeros(0, dtype=dtype))

    def forward(self, input_current: Tensor) -> Tensor:
        if self.potential.shape != input_current.shape:
            if self.potential.dim() == 1 and self.potential.size(0) == 0:
                self.potential = torch.zeros_like(input_current)
                self.spike = torch.zeros_like(input_current)
            else:
                raise ValueError(
                    "input_current of shape " + str(list(input_current.shape))
                    + " does not match the neuron's state of shape " + str(list(self.potential.shape))
                    + "; call reset_state() before feeding a new shape"
                )
        spike, v_next = self._step(input_current, self.potential)
        self.potential = v_next
        self.spike = spike
        return spike

    @torch.jit.export
    def step(self, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """One step with explicit state; does not touch the buffers."""
        return self._step(x, v)

    @torch.jit.export
    def reset_state(self) -> None:
        """Forget the state; the next call starts from ``v = 0`` with the input's shape."""
        self.potential = torch.zeros(0, dtype=self.potential.dtype, device=self.potential.device)
        self.spike = torch.zeros(0, dtype=self.spike.dtype, device=self.spike.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The state's shape follows the data, so adopt the saved shape before
        # the default loader compares shapes.
        for name in ("potential", "spike"):
            saved = state_dict.get(prefix + name)
            if saved is not None:
                current = getattr(self, name)
                setattr(self, name, torch.empty(saved.shape, dtype=current.dtype, device=current.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
