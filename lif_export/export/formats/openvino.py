"""The OpenVINO format: the ONNX step graph as an OpenVINO IR whose states live inside the model.

The IR is read from the ONNX step graph (:func:`lif_export.export.formats.onnx.step_graph`), so it
has exactly that graph's arithmetic, and then:

1. OpenVINO's ``MakeStateful`` transformation turns every state pair of the manifest (``v`` ->
   ``v_next``, each ``state.<i>.<var>`` of a network) into a variable: a ``ReadValue`` where the
   state input was and an ``Assign`` of the next state. Only ``x`` is passed and only the primary
   output returned; ``infer_request.reset_state()`` is the reset.
2. Each ``ReadValue`` is given an initializer, the state's ``initial_value`` broadcast to the
   state's shape (its batch and dynamic feature dims taken from ``x``), so that the first step after
   a reset starts from the manifest's initial state for any batch size.
3. Every ``Greater(u, theta)`` becomes the equivalent ``Less(theta, u)``: the CPU plugin's
   ``Greater`` returns true when an operand is NaN (openvinotoolkit/openvino issues 31196, 35927),
   so a NaN potential would fire; its ``Less`` is false on NaN, as ``docs/semantics.md`` requires.
4. Every floating-point ``Add(a, b)`` becomes ``Select(IsNaN(b), Add(b, b), Add(a, b))``: when both
   operands are NaN (``beta * v`` and ``x``), eager PyTorch returns ``x``'s NaN and the plugin's
   fused multiply-then-add kernel ``beta * v``'s, whatever the operand order; ``b + b`` is ``b``
   quieted, and elsewhere at most one operand is NaN (the 500-step ``special_values`` case of
   ``lif-export verify --full`` has such steps).

Written: ``<prefix>_step.xml`` with its weights ``<prefix>_step.bin`` (a companion file in the
manifest, checksummed like the artifact). The entry's ``"runtime_config"`` is what a host must set
when it compiles the IR: ``INFERENCE_PRECISION_HINT=f32``. The CPU plugin's default on a CPU with
bfloat16 support is bf16 inference, which rounds the potential (the near-threshold cases then fire
on the wrong step). With f32 the plugin computes ``beta * v`` and ``+ x`` in one fused eltwise
kernel but with two roundings, bit-identical to eager PyTorch on the near-threshold cases and on
every other input case but for the differences below.

What OpenVINO cannot do, refused when the export is planned: float64, and layers whose graph computes
in float64 (``ExactLinear``, ``ExactConv2d``, ``RecurrentLIFLayer``: their exact sums need float64).
Measured with the openvino 2026.4.1 wheel, whose only device here is the CPU plugin (no reference or
template plugin ships in it): a float64 IR compiles but is computed in float32 (``0.9 * 0.7 + 0.1``
returns ``0.73000002``, ``1e-300`` returns ``0``) with any ``EXECUTION_MODE_HINT``; the hint
``f64`` is refused ("Wrong value f64 for property key INFERENCE_PRECISION_HINT. Supported values:
bf16, f16, f32, undefined"); a float64 state is refused by ``set_state`` ("CPU plugin does not
support f64 for use with oneDNN"). The exact sums cannot move to integers either: the plugin
computes ``i64`` ``MatMul``, ``Multiply`` and ``ReduceSum`` in ``i32`` (``2^20 * 2^16`` saturates to
``2147483520``, or wraps), and the sums need up to 53 bits.

Two differences remain, recorded rather than hidden:

* Not in the IR but in the CPU plugin's state API: a state set with ``VariableState.set_state`` (or
  computed by an initializer) is loaded with flush-to-zero, so ``-0.0`` and subnormal initial
  states become ``+0.0`` (``Memory::load`` in the plugin's ``cpu_memory.cpp``), whatever the
  settings (tried: ``INFERENCE_PRECISION_HINT=f32`` with ``EXECUTION_MODE_HINT`` ``ACCURACY`` or
  ``PERFORMANCE`` and ``CPU_DENORMALS_OPTIMIZATION`` ``NO`` or ``YES``; a float64 tensor is refused).
  Each written IR is run at export on the input cases (:mod:`.selfcheck`) and the first difference
  recorded as the entry's ``"deviation"`` (the ``zeros`` case, which starts from ``-0.0``).
* Subnormal states the model computes itself are kept, but with ``v = -0.0`` and ``x = -0.0`` the
  plugin's ``beta * v + x`` is ``+0.0`` (eager: ``-0.0``), in the stateless step graph too, with
  every reset (a hand-built ``Multiply``/``Add`` graph keeps ``-0.0``: some fusion of the step graph
  loses it; not found). No input case reaches such a step, so ``verify`` does not show it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from ...errors import InvalidTypeError, InvalidValueError
from ..manifest import ArtifactEntry
from ..model import ExportModel
from . import onnx as onnx_format
from .base import Artifact, ExportOptions, model_io

if TYPE_CHECKING:
    import openvino as ov

INSTALL_HINT = "pip install 'lif_export[openvino]'"
#: Compile properties that keep the arithmetic exact (see the module docstring).
RUNTIME_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


def require_openvino() -> None:
    """Raise an ``ImportError`` with the install command when the ``openvino`` package is missing."""
    try:
        import openvino  # noqa: F401
    except ImportError as err:
        raise ImportError(f"the openvino format needs the openvino package: {INSTALL_HINT} ({err})") from err


def check_float32(model: ExportModel, graph: onnx.ModelProto) -> None:
    """Refuse float64 models and layers that compute in float64 (OpenVINO's CPU plugin has no float64)."""
    if model.dtype != "float32":
        raise InvalidValueError(
            f"dtype must be 'float32' for the openvino format (OpenVINO's CPU plugin has no float64 "
                         f"kernels), got {model.dtype!r}")
    wide = {node.output[0] for node in graph.graph.node if node.op_type == "Cast"
            and any(a.name == "to" and a.i == onnx.TensorProto.DOUBLE for a in node.attribute)}
    if wide:
        layers = sorted({type(model.layers[int(name[1:].split("_")[0])][0]).__name__
                         for name in wide if name.startswith("l") and name[1:].split("_")[0].isdigit()})
        raise InvalidTypeError(
            f"cannot export {', '.join(layers) or 'this model'} to openvino: its exact sum is computed "
                        "in float64, which OpenVINO's CPU plugin computes in float32 (not bit-identical)")


def _dim(shape_of_x: ov.Node, axis: int) -> ov.Node:
    import openvino.opset13 as ops

    return ops.gather(shape_of_x, ops.constant(np.array([axis], np.int64)), ops.constant(np.int64(0)))


def _initialize_states(ov_model: ov.Model, model: ExportModel) -> None:
    """Give every ``ReadValue`` an initializer: its state's ``initial_value`` in the state's shape."""
    import openvino.opset13 as ops

    shape_of_x = ops.shape_of(ov_model.input("x").get_node().output(0))
    by_input = {s.input: s for s in model.states}
    for op in ov_model.get_ordered_ops():
        if op.get_type_name() != "ReadValue":
            continue
        state = by_input[next(n for n in op.output(0).get_names() if n in by_input)]
        dims = [_dim(shape_of_x, model.x_dims.index(d)) if isinstance(d, str) else ops.constant(np.array([d], np.int64))
                for d in state.dims]
        value = ops.constant(np.array(state.initial_value, model.numpy_dtype))
        op.set_arguments([ops.broadcast(value, ops.concat(dims, 0)).output(0)])


def _greater_to_less(ov_model: ov.Model) -> None:
    """``Greater(a, b)`` -> ``Less(b, a)``: the same comparison, false on NaN on the CPU plugin too."""
    import openvino.opset13 as ops

    for op in ov_model.get_ordered_ops():
        if op.get_type_name() == "Greater":
            less = ops.less(op.input_value(1), op.input_value(0))
            less.set_friendly_name(op.get_friendly_name())
            op.output(0).replace(less.output(0))


def _add_keeping_second_nan(ov_model: ov.Model) -> None:
    """``Add(a, b)`` -> ``Select(IsNaN(b), Add(b, b), Add(a, b))`` for floating-point sums: ``b``'s NaN
    when both are NaN, as eager PyTorch (module docstring, step 4)."""
    import openvino.opset13 as ops

    for op in ov_model.get_ordered_ops():
        if op.get_type_name() == "Add" and op.get_output_element_type(0).is_real():
            a, b = op.input_value(0), op.input_value(1)
            select = ops.select(ops.is_nan(b), ops.add(b, b), ops.add(a, b))
            select.set_friendly_name(op.get_friendly_name())
            op.output(0).replace(select.output(0))


def stateful_model(model: ExportModel, opset: int) -> ov.Model:
    """The model's ONNX step graph as an OpenVINO model with its states inside (module docstring)."""
    import openvino as ov
    from openvino._offline_transformations import apply_make_stateful_transformation

    graph = onnx_format.step_graph(model, opset)
    check_float32(model, graph)
    ov_model = ov.Core().read_model(graph.SerializeToString())
    apply_make_stateful_transformation(ov_model, {s.input: s.output for s in model.states})
    _initialize_states(ov_model, model)
    _greater_to_less(ov_model)
    _add_keeping_second_nan(ov_model)
    ov_model.validate_nodes_and_infer_types()
    return ov_model


def _writer(model: ExportModel, ov_model: ov.Model, entry: ArtifactEntry) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        import openvino as ov

        ov.save_model(ov_model, folder / entry["file"], compress_to_fp16=False)
        from ...backends.openvino import OpenVinoStep
        from .selfcheck import record_deviation

        record_deviation(model, OpenVinoStep(entry, folder / entry["file"]), entry)

    return write


def artifacts(model: ExportModel, options: ExportOptions) -> list[Artifact]:
    """``<prefix>_step.xml`` and its weights ``<prefix>_step.bin``; converted here, checked when written."""
    require_openvino()
    ov_model = stateful_model(model, onnx_format.check_opset(options.opset))
    entry: ArtifactEntry = {
        "name": "openvino_step", "file": f"{model.prefix}_step.xml", "format": "openvino", "kind": "step",
        "method": "infer", "calling_convention": "stateful", "runtime_config": dict(RUNTIME_CONFIG),
        "companions": [{"file": f"{model.prefix}_step.bin", "sha256": "0" * 64}],  # the pipeline checksums it
        **model_io(model, False),
    }
    return [Artifact(entry, _writer(model, ov_model, entry))]
