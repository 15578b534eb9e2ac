"""``SpikingSequential``: ordinary and stateful layers in a chain, the state threaded through.

The network's state is one flat, ordered list of tensors named
``state.<layer index>.<variable>`` (e.g. ``state.1.v``, ``state.3.i``), the
concatenation of its stateful layers' states. Every method compiles with
``torch.jit.script``:

* ``step(x, state) -> (out, state)`` (also ``forward``) - one time step;
* ``forward_sequence(x[T, ...], state) -> (out[T, ...], state_T)``;
* ``forward_trace(x[T, ...], state) -> (out[T, ...], state_T, traces)``, ``traces`` the
  state after every step, one ``[T, ...]`` tensor per state variable;
* ``initial_state(batch, dtype)`` - zeros for every state tensor.
"""

import torch
from torch import Tensor, nn

from ..errors import InvalidTypeError, InvalidValueError
from .exact import mark_spike_inputs
from .lif import LIFLayer
from .protocol import StatefulLayer, Stateless


class SpikingSequential(nn.Module):
    """A chain of layers with explicit state.

    Example::

        net = SpikingSequential(ExactLinear(64, 100), LIFLayer(100), ExactLinear(100, 10),
                                LeakyIntegratorLayer(10))
        state = net.initial_state(batch=32, dtype=torch.float32)
        for x in frames:                       # x [32, 64]
            out, state = net(x, state)
        outs, state = net.forward_sequence(xs, net.initial_state(32, torch.float32))  # xs [T, 32, 64]
    """

    __constants__ = ["state_names", "state_counts"]

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        if not layers:
            raise InvalidValueError("SpikingSequential needs at least one layer")
        wrapped = []
        for i, layer in enumerate(layers):
            if not isinstance(layer, nn.Module):
                raise InvalidTypeError(f"layer {i} must be an nn.Module, got {type(layer).__name__}")
            wrapped.append(layer if isinstance(layer, (StatefulLayer, Stateless)) else Stateless(layer))
        self.layers = nn.ModuleList(wrapped)
        mark_spike_inputs(wrapped)  # exact layers after a spiking layer skip quantizing their 0/1 input
        self.state_names = [
            f"state.{i}.{name}" for i, layer in enumerate(wrapped) for name in layer.state_names
        ]
        self.state_counts = [len(layer.state_names) for layer in wrapped]

    @torch.jit.export
    def initial_state(self, batch: int, dtype: torch.dtype) -> list[Tensor]:
        state: list[Tensor] = []
        for layer in self.layers:
            state += layer.initial_state(batch, dtype)  # type: ignore[operator]
        return state

    @torch.jit.export
    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        return self._step(x, state, None)

    @torch.jit.export
    def step_with_layer_outputs(self, x: Tensor, state: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """One step: ``(every layer's output in order, new state)`` (for rasters and probes)."""
        outputs: list[Tensor] = []
        _, new_state = self._step(x, state, outputs)
        return outputs, new_state

    def _check_state(self, state: list[Tensor]) -> None:
        if len(state) != len(self.state_names):
            raise ValueError(
                "state must have " + str(len(self.state_names)) + " tensors " + str(self.state_names)
                + ", got " + str(len(state))
            )

    def _step(self, x: Tensor, state: list[Tensor], outputs: list[Tensor] | None) -> tuple[Tensor, list[Tensor]]:
        self._check_state(state)
        new_state: list[Tensor] = []
        offset = 0
        i = 0
        for layer in self.layers:
            count = self.state_counts[i]
            x, layer_state = layer.step(x, state[offset:offset + count])  # type: ignore[operator]
            new_state += layer_state
            offset += count
            i += 1
            if outputs is not None:
                outputs.append(x)
        return x, new_state

    def forward(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        return self.step(x, state)

    def _empty_output(self, x: Tensor, state: list[Tensor]) -> Tensor:
        """``out[0, ...]`` for a zero-length sequence (its shape from one step on zeros)."""
        probe, _ = self.step(torch.zeros(x.shape[1:], dtype=x.dtype, device=x.device), state)
        return torch.empty([0] + list(probe.shape), dtype=x.dtype, device=x.device)

    @torch.jit.export
    def forward_sequence(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        if x.size(0) == 0:
            return self._empty_output(x, state), state
        if not torch.jit.is_scripting() and torch.is_grad_enabled():
            trained = self._train_sequence(x, state)
            if trained is not None:
                return trained
        outs: list[Tensor] = []
        for x_t in x.unbind(0):
            out, state = self.step(x_t, state)
            outs.append(out)
        return torch.stack(outs), state

    @torch.jit.unused
    def _train_sequence(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]] | None:
        """Training (eager): the sequence layer by layer, so that each ``LIFLayer`` runs its whole
        sequence through the hand-written backward through time (:meth:`LIFLayer.train_sequence`);
        ``None`` when no layer has that path. Every layer sees only the previous layer's output of the
        same step, so the order changes no value: the other layers run their ``step`` per time step as
        in the step-by-step loop, and the gradients are autograd's through that loop, bit for bit. Not
        with two dropout layers in training mode, which would draw their random numbers in another
        order (layers of other kinds that draw random numbers are not recognised)."""
        if not any(isinstance(layer, LIFLayer) and layer.train_sequence_applies(x.dtype) for layer in self.layers):
            return None
        if sum(isinstance(m, nn.modules.dropout._DropoutNd) and m.training for m in self.modules()) > 1:
            return None
        self._check_state(state)
        new_state: list[Tensor] = []
        offset = 0
        for layer, count in zip(self.layers, self.state_counts, strict=True):
            layer_state = state[offset:offset + count]
            offset += count
            result = layer.train_sequence(x, layer_state) if isinstance(layer, LIFLayer) else None
            if result is None:
                outs: list[Tensor] = []
                for x_t in x.unbind(0):
                    out, layer_state = layer.step(x_t, layer_state)  # type: ignore[operator]
                    outs.append(out)
                result = torch.stack(outs), layer_state
            x, layer_state = result
            new_state += layer_state
        return x, new_state

    @torch.jit.export
    def forward_trace(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        if x.size(0) == 0:
            return self._empty_output(x, state), state, [torch.empty([0] + list(s.shape), dtype=s.dtype) for s in state]
        outs: list[Tensor] = []
        history: list[list[Tensor]] = []
        for x_t in x.unbind(0):
            out, state = self.step(x_t, state)
            outs.append(out)
            history.append(state)
        traces: list[Tensor] = []
        for k in range(len(self.state_names)):
            traces.append(torch.stack([h[k] for h in history]))
        return torch.stack(outs), state, traces


class StatefulNetwork(nn.Module):
    """The stateful API for a whole network: ``forward(x) -> out`` with the state kept inside.

    The state starts as zeros for the first input's batch size (and again after
    :meth:`reset_state`); ``step`` is the explicit-state form.
    """

    state: list[Tensor]  # a class annotation: TorchScript types attributes from these

    def __init__(self, network: SpikingSequential) -> None:
        super().__init__()
        self.network = network
        self.state = []

    def forward(self, x: Tensor) -> Tensor:
        if len(self.state) == 0:
            self.state = self.network.initial_state(x.size(0), x.dtype)
        out, self.state = self.network.step(x, self.state)
        return out

    @torch.jit.export
    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        return self.network.step(x, state)

    @torch.jit.export
    def reset_state(self) -> None:
        self.state = []
