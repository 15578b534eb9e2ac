"""The Triton model repository: config.pbtxt parsed with tritonclient's model_config_pb2, checked
field by field against the manifest, and model.onnx run against the exported step graph."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from lif_export.cases import CASES
from lif_export.export import export_network
from lif_export.network import ExactLinear, LIFLayer, SpikingSequential, SynapticLIFLayer
from lif_export.triton import write_model_repository
from tests.conftest import assert_bitwise_equal

mc = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="needs `pip install 'lif_export[triton]'`")
text_format = pytest.importorskip("google.protobuf.text_format", reason="tritonclient[grpc] brings protobuf")


def _config(folder):
    return text_format.Parse((folder / "config.pbtxt").read_text(), mc.ModelConfig())


def _check_against_manifest(config, manifest: dict, sizes: dict, max_batch_size: int) -> None:
    step = next(a for a in manifest["artifacts"] if a["name"] == "onnx_step")
    dtype = {"float32": mc.TYPE_FP32, "float64": mc.TYPE_FP64}[step["inputs"][0]["dtype"]]

    def dims(tensor: dict) -> list[int]:
        return [sizes.get(d, d) for d in tensor["shape"][1:]]

    assert config.backend == "onnxruntime" and config.max_batch_size == max_batch_size
    [x], [out] = config.input, config.output
    assert (x.name, x.data_type, list(x.dims)) == ("x", dtype, dims(step["inputs"][0]))
    assert (out.name, out.data_type, list(out.dims)) == (step["outputs"][0]["name"], dtype, dims(step["outputs"][0]))
    batching = config.sequence_batching
    controls = {c.name: (c.control[0].kind, list(c.control[0].int32_false_true)) for c in batching.control_input}
    assert controls == {"START": (mc.ModelSequenceBatching.Control.CONTROL_SEQUENCE_START, [0, 1]),
                        "READY": (mc.ModelSequenceBatching.Control.CONTROL_SEQUENCE_READY, [0, 1])}
    shapes = {t["name"]: dims(t) for t in step["inputs"]}
    assert len(batching.state) == len(step["state"])
    for state, pair in zip(batching.state, step["state"], strict=True):
        assert (state.input_name, state.output_name, state.data_type) == (pair["input"], pair["output"], dtype)
        assert list(state.dims) == shapes[pair["input"]]
        [initial] = state.initial_state
        assert (initial.data_type, list(initial.dims)) == (dtype, shapes[pair["input"]])
        assert initial.WhichOneof("state_data") == "zero_data" and initial.zero_data and pair["initial_value"] == 0


def test_neuron_repository(exported, tmp_path):
    manifest = json.loads((exported / "manifest.json").read_text())
    folder = write_model_repository(exported, tmp_path, feature_sizes={"neurons": 16}, max_batch_size=4)
    assert folder == tmp_path / "lif_step" and (folder / "1" / "model.onnx").is_file()
    config = _config(folder)
    assert config.name == "lif_step"
    _check_against_manifest(config, manifest, {"neurons": 16}, 4)


def test_model_onnx_computes_the_step_graph(exported, tmp_path):
    """model.onnx (with the control inputs Triton feeds) gives the exported step graph's bits."""
    folder = write_model_repository(exported, tmp_path, feature_sizes={"neurons": 16})
    served = ort.InferenceSession(str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    original = ort.InferenceSession(str(exported / "lif_step.onnx"), providers=["CPUExecutionProvider"])
    assert {i.name for i in served.get_inputs()} == {"x", "v", "START", "READY"}
    x = CASES["special_values"].make_input({"beta": np.float32(0.9), "threshold": np.float32(1), "v_reset":
                                            np.float32(0), "reset": "zero"}, (5, 3, 16), np.float32,
                                           np.random.default_rng(0))
    v = v_served = np.zeros((3, 16), np.float32)
    control = np.ones((3, 1), np.int32)
    for x_t in x:
        spike, v = original.run(None, {"x": x_t, "v": v})
        spike_served, v_served = served.run(None, {"x": x_t, "v": v_served, "START": control, "READY": control})
        assert_bitwise_equal(spike_served, spike, "spike")
        assert_bitwise_equal(v_served, v, "v_next")


def test_network_repository(tmp_path):
    torch.manual_seed(0)
    net = SpikingSequential(ExactLinear(5, 6), SynapticLIFLayer(6, alpha=0.7), LIFLayer(6))
    manifest = export_network(net, (5,), tmp_path / "models", formats=["onnx"]).manifest
    folder = write_model_repository(tmp_path / "models", tmp_path / "repo", model_name="snn")
    config = _config(folder)
    assert config.name == "snn"
    _check_against_manifest(config, manifest, {}, 8)
    assert [s.input_name for s in config.sequence_batching.state] == ["state.1.i", "state.1.v", "state.2.v"]


def test_errors_name_the_fix(exported, tmp_path):
    with pytest.raises(ValueError, match="neurons"):
        write_model_repository(exported, tmp_path)
    with pytest.raises(ValueError, match="max_batch_size"):
        write_model_repository(exported, tmp_path, feature_sizes={"neurons": 4}, max_batch_size=0)
    net_dir = tmp_path / "pt_only"
    export_network(SpikingSequential(LIFLayer(3)), (3,), net_dir, formats=["torchscript"])
    with pytest.raises(ValueError, match="onnx_step"):
        write_model_repository(net_dir, tmp_path / "repo")


def test_nonzero_initial_state_is_a_data_file(exported, tmp_path):
    """A state whose manifest initial_value is not 0 starts from a raw file of that value."""
    models = tmp_path / "models"
    models.mkdir()
    manifest = json.loads((exported / "manifest.json").read_text())
    step = next(a for a in manifest["artifacts"] if a["name"] == "onnx_step")
    step["state"][0]["initial_value"] = 0.5
    manifest["artifacts"] = [step]
    (models / "manifest.json").write_text(json.dumps(manifest))
    (models / "lif_step.onnx").write_bytes((exported / "lif_step.onnx").read_bytes())
    folder = write_model_repository(models, tmp_path / "repo", feature_sizes={"neurons": 3})
    [initial] = _config(folder).sequence_batching.state[0].initial_state
    assert initial.WhichOneof("state_data") == "data_file"
    raw = np.fromfile(folder / "initial_state" / initial.data_file, np.float32)
    assert_bitwise_equal(raw, np.full(3, 0.5, np.float32), "initial state file")
