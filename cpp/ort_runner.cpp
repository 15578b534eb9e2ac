// lif_ort_runner: drives lif_export's ONNX graphs through the ONNX Runtime C++ API.
//
// The step graph is called once per time step and the sequence graph on chunks of
// steps; input/output names and which output feeds which state input come from
// manifest.json, never from this file. The graph's inputs must be the manifest's, in
// the manifest's order, and the manifest's entry must match the copy embedded in the
// model's metadata.
#include <onnxruntime_cxx_api.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/harness.hpp"

namespace {

ONNXTensorElementDataType ort_type(lif::DType d) {
  return d == lif::DType::Float32 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT : ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE;
}

lif::Array to_array(const Ort::Value& value, const std::string& artifact, const std::string& name) {
  if (!value.IsTensor()) throw lif::InputError("artifact '" + artifact + "' output '" + name + "' is not a tensor");
  auto info = value.GetTensorTypeAndShapeInfo();
  lif::Array a;
  switch (info.GetElementType()) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: a.dtype = lif::DType::Float32; break;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: a.dtype = lif::DType::Float64; break;
    default:
      throw lif::InputError("artifact '" + artifact + "' output '" + name + "' has ONNX element type " +
                            std::to_string(static_cast<int>(info.GetElementType())) + ", not float32 or float64");
  }
  a.shape = info.GetShape();
  const size_t bytes = info.GetElementCount() * lif::dtype_size(a.dtype);
  const char* data = static_cast<const char*>(value.GetTensorRawData());
  if (bytes > 0) a.bytes.assign(data, data + bytes);
  return a;
}

std::string join(const std::vector<std::string>& names) {
  std::string s = "(";
  for (size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
  return s + ")";
}

// One session per artifact; names from the manifest, checked against the graph.
lif::CallFn load(Ort::Env& env, const lif::Artifact& artifact, const std::string& path) {
  Ort::SessionOptions options;
  options.SetIntraOpNumThreads(1);
  options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
  std::shared_ptr<Ort::Session> session;
  try {
    session = std::make_shared<Ort::Session>(env, path.c_str(), options);
  } catch (const Ort::Exception& e) {
    throw lif::InputError(path + ": ONNX Runtime cannot load it: " + e.what());
  }

  Ort::AllocatorWithDefaultOptions allocator;
  std::vector<std::string> graph_inputs, graph_outputs;
  for (size_t i = 0; i < session->GetInputCount(); ++i)
    graph_inputs.push_back(session->GetInputNameAllocated(i, allocator).get());
  for (size_t i = 0; i < session->GetOutputCount(); ++i)
    graph_outputs.push_back(session->GetOutputNameAllocated(i, allocator).get());

  auto names = std::make_shared<std::vector<std::vector<std::string>>>(2);
  for (const auto& t : artifact.inputs) (*names)[0].push_back(t.name);
  for (const auto& t : artifact.outputs) (*names)[1].push_back(t.name);
  if (graph_inputs != (*names)[0])
    throw lif::InputError(path + ": the graph's inputs are " + join(graph_inputs) + ", but the manifest lists artifact '" +
                          artifact.name + "' with inputs " + join((*names)[0]));
  const std::set<std::string> outputs(graph_outputs.begin(), graph_outputs.end());
  for (const auto& n : (*names)[1])
    if (!outputs.count(n))
      throw lif::InputError(path + ": the graph has no output '" + n + "' (its outputs are " + join(graph_outputs) +
                            "), but the manifest lists it for artifact '" + artifact.name + "'");

  Ort::ModelMetadata metadata = session->GetModelMetadata();
  Ort::AllocatedStringPtr embedded = metadata.LookupCustomMetadataMapAllocated("lif_export_manifest.json", allocator);
  lif::check_embedded_entry(artifact, embedded ? std::string(embedded.get()) : std::string(), path);

  const std::string artifact_name = artifact.name;
  return [session, names, artifact_name](const std::vector<const lif::Array*>& inputs) {
    Ort::MemoryInfo memory = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    std::vector<Ort::Value> values;
    std::vector<const char*> in_names, out_names;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const lif::Array& a = *inputs[i];
      values.push_back(Ort::Value::CreateTensor(memory, const_cast<char*>(a.bytes.data()), a.bytes.size(),
                                                a.shape.data(), a.shape.size(), ort_type(a.dtype)));
      in_names.push_back((*names)[0][i].c_str());
    }
    for (const auto& n : (*names)[1]) out_names.push_back(n.c_str());
    std::vector<Ort::Value> outputs = session->Run(Ort::RunOptions{nullptr}, in_names.data(), values.data(),
                                                   values.size(), out_names.data(), out_names.size());
    std::vector<lif::Array> result;
    for (size_t i = 0; i < outputs.size(); ++i) result.push_back(to_array(outputs[i], artifact_name, (*names)[1][i]));
    return result;
  };
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Ort::Env env(ORT_LOGGING_LEVEL_ERROR, "lif_ort_runner");
    return lif::run_main(argc, argv, "lif_ort_runner", "onnx",
                         [&env](const lif::Artifact& artifact, const std::string& path) { return load(env, artifact, path); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lif_ort_runner: error: %s\n", lif::one_line(e.what()).c_str());
    return 2;
  }
}
