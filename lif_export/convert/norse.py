"""``from_norse``: a Norse model as a :class:`~lif_export.network.SpikingSequential`, through NIR.

Norse integrates with Euler, ``v + dt*tau_mem_inv*((v_leak - v) + i)``, which is NIR's equation
``tau dv/dt = (v_leak - v) + r i`` with ``tau = 1/tau_mem_inv`` and ``r = 1`` read at Norse's ``dt``.
So each cell is written as the NIR node it integrates (with the correct ``tau``, unlike Norse's own
``to_nir``) and read back by :func:`lif_export.nir.from_nir` with ``exact=False``:

* ``LIFBoxCell`` -> NIR ``LIF`` -> :class:`LIFLayer` (``beta = 1 - dt/tau``, the input scale ``dt/tau``
  folded into the ``Linear``/``Conv2d`` before it);
* ``LIFCell`` -> NIR ``CubaLIF`` -> :class:`SynapticLIFLayer` (the current first, then the potential,
  as Norse's feed-forward step does; the input jumps into the current unscaled: ``w_in = tau_syn/dt``);
* ``LICell`` -> NIR ``CubaLI`` -> two :class:`LeakyIntegratorLayer`; ``LIBoxCell`` -> ``LI``.

The results are close but not bit-identical: Norse rounds four times per potential update
(``(v_leak - v) + i``, ``* dt*tau_mem_inv``, ``v + dv``) where our step rounds twice (``beta*v + x``,
the scale already in the weights). ``docs/nir.md`` ("Norse") gives the measured agreement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InvalidValueError
from ..export.formats.nir import import_nir
from ..network import SpikingSequential


def import_norse() -> ModuleType:
    try:
        import norse.torch as norse_torch
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("from_norse needs Norse: pip install 'lif_export[convert]'") from err
    return norse_torch


def _value(tensor: Any) -> np.ndarray:
    return np.asarray(torch.as_tensor(tensor).detach().cpu().double().numpy())


def _check_cell(name: str, cell: Any, norse_torch: ModuleType) -> None:
    from norse.torch.functional.reset import reset_value
    from norse.torch.functional.threshold import threshold

    p = cell.p
    if getattr(p, "reset_method", reset_value) is not reset_value:
        raise InvalidValueError(
            f"{name} ({type(cell).__name__}): only Norse's reset_value (the zero reset to v_reset) is "
                         "mapped; NIR, the route from_norse takes, has no other reset")
    if hasattr(p, "method"):
        probe = torch.tensor([float("-inf"), -1.0, -0.0, 0.0, 1e-45, 1.0, float("inf"), float("nan")])
        with torch.no_grad():
            forward = threshold(probe, p.method, p.alpha)
        if not torch.equal(forward, (probe > 0).to(forward.dtype)):
            raise InvalidValueError(f"{name}: Norse's threshold method {p.method!r} is not the step z > 0 in forward")


def _node(name: str, module: nn.Module, nir: ModuleType, norse_torch: ModuleType, report: Callable[[str], None]
          ) -> Any:
    """The NIR node ``module`` integrates (``None`` for an identity)."""
    if isinstance(module, nn.Linear):
        bias = module.bias if module.bias is not None else torch.zeros(module.out_features)
        return nir.Affine(weight=_value(module.weight), bias=_value(bias))
    if isinstance(module, nn.Conv2d):
        return nir.Conv2d(input_shape=None, weight=_value(module.weight), stride=module.stride,
                          padding=module.padding, dilation=module.dilation, groups=module.groups,
                          bias=_value(module.bias if module.bias is not None else torch.zeros(module.out_channels)))
    if isinstance(module, nn.Flatten):
        return nir.Flatten(input_type=None, start_dim=module.start_dim - 1,
                           end_dim=module.end_dim - 1 if module.end_dim > 0 else module.end_dim)
    if isinstance(module, (nn.Identity, nn.Dropout)):
        return None
    cells = (norse_torch.LIFBoxCell, norse_torch.LIFCell, norse_torch.LICell, norse_torch.LIBoxCell)
    if not isinstance(module, cells):
        raise InvalidValueError(
            f"{name}: from_norse reads Linear, Conv2d, Flatten and Norse's LIFBoxCell, LIFCell, LICell "
                         f"and LIBoxCell, got {type(module).__name__}")
    _check_cell(name, module, norse_torch)
    p = module.p
    tau_mem = 1.0 / _value(p.tau_mem_inv)
    v_leak = _value(p.v_leak)
    ones = np.ones_like(np.broadcast_to(tau_mem, np.broadcast(tau_mem, v_leak).shape))
    if np.any(v_leak) and hasattr(p, "v_th"):
        report(f"{name}: Norse starts the potential at v_leak = {v_leak.ravel()[:4]}, the converted layer at 0: "
               "the first steps differ")
    if isinstance(module, norse_torch.LIFBoxCell):
        return nir.LIF(tau=tau_mem * ones, r=ones, v_leak=v_leak * ones, v_threshold=_value(p.v_th) * ones,
                       v_reset=_value(p.v_reset) * ones)
    if isinstance(module, norse_torch.LIBoxCell):
        return nir.LI(tau=tau_mem * ones, r=ones, v_leak=v_leak * ones)
    tau_syn = (1.0 / _value(p.tau_syn_inv)) * ones
    w_in = tau_syn / float(module.dt)  # the input jumps into the current unscaled: NIR's dt/tau_syn * w_in = 1
    if isinstance(module, norse_torch.LICell):
        return nir.CubaLI(tau_syn=tau_syn, tau_mem=tau_mem * ones, r=ones, v_leak=v_leak * ones, w_in=w_in)
    return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem * ones, r=ones, v_leak=v_leak * ones,
                       v_threshold=_value(p.v_th) * ones, v_reset=_value(p.v_reset) * ones, w_in=w_in)


def from_norse(model: nn.Module | Sequence[nn.Module], feature_shape: tuple[int, ...] | None = None, *,
               report: Callable[[str], None] | None = print) -> SpikingSequential:
    """A Norse model (``SequentialState``, ``nn.Sequential`` or its modules in forward order) as a network
    of ordinary ``nn.Linear``/``nn.Conv2d`` and lif_export neuron layers (close to Norse, not bit-identical).

    ``feature_shape`` is the per-sample input shape (inferred from a first ``nn.Linear``); every cell must
    share one ``dt``. Raises ``ValueError`` naming the module for what is not mapped.
    """
    from ..nir import from_nir  # here: lif_export.nir builds on this package's LayerChain

    norse_torch, nir = import_norse(), import_nir()
    report = report or (lambda line: None)
    modules: list[Any] = list(model) if isinstance(model, (nn.Sequential, nn.ModuleList, list, tuple)) else [model]
    dts = {float(m.dt) for m in modules if hasattr(m, "dt") and hasattr(m, "p")}
    if len(dts) != 1:
        raise InvalidValueError(f"the Norse cells must share one dt (the step the network runs at), got {sorted(dts)}")
    nodes: dict[str, Any] = {}
    for i, module in enumerate(modules):
        node = _node(f"module {i}", module, nir, norse_torch, report)
        if node is not None:
            nodes[str(i)] = node
    if feature_shape is None and modules and isinstance(modules[0], nn.Linear):
        feature_shape = (modules[0].in_features,)
    if feature_shape is None:
        raise InvalidValueError("pass feature_shape (the per-sample input shape): the first module is not an nn.Linear")
    names = ["input", *nodes, "output"]
    nodes = {"input": nir.Input(input_type=np.array(feature_shape)), **nodes, "output": nir.Output(output_type=None)}
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:], strict=True)), type_check=False)
    return from_nir(graph, dt=dts.pop(), method="euler", exact=False, report=report)
