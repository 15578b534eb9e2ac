// lif_ort_runner: drives lif_export's ONNX graphs through the ONNX Runtime C++ API.
//
// The step graph is called once per time step and the sequence graph on chunks of
// steps; input/output names and which output feeds which state input come from
// manifest.json, never from this file.
#include <onnxruntime_cxx_api.h>

#include "common/harness.hpp"

namespace {

ONNXTensorElementDataType ort_type(lif::DType d) {
  return d == lif::DType::Float32 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT : ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE;
}

lif::Array to_array(const Ort::Value& value) {
  auto info = value.GetTensorTypeAndShapeInfo();
  lif::Array a;
  a.dtype = info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT ? lif::DType::Float32 : lif::DType::Float64;
  a.shape = info.GetShape();
  const char* data = static_cast<const char*>(value.GetTensorRawData());
  a.bytes.assign(data, data + info.GetElementCount() * lif::dtype_size(a.dtype));
  return a;
}

// One session per artifact; names from the manifest, checked against the graph.
lif::CallFn load(Ort::Env& env, const lif::Json& artifact, const std::string& path) {
  Ort::SessionOptions options;
  options.SetIntraOpNumThreads(1);
  options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
  auto session = std::make_shared<Ort::Session>(env, path.c_str(), options);

  auto names = std::make_shared<std::vector<std::vector<std::string>>>(2);
  for (size_t i = 0; i < artifact["inputs"].size(); ++i) (*names)[0].push_back(artifact["inputs"][i]["name"].str());
  for (size_t i = 0; i < artifact["outputs"].size(); ++i) (*names)[1].push_back(artifact["outputs"][i]["name"].str());
  Ort::AllocatorWithDefaultOptions allocator;
  for (size_t i = 0; i < session->GetInputCount(); ++i) {
    std::string graph_name = session->GetInputNameAllocated(i, allocator).get();
    if (i >= (*names)[0].size() || graph_name != (*names)[0][i])
      throw lif::UsageError(path + ": graph input " + std::to_string(i) + " is '" + graph_name +
                            "', the manifest does not list it there");
  }

  return [session, names](const std::vector<const lif::Array*>& inputs) {
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
    for (const auto& v : outputs) result.push_back(to_array(v));
    return result;
  };
}

}  // namespace

int main(int argc, char** argv) {
  Ort::Env env(ORT_LOGGING_LEVEL_ERROR, "lif_ort_runner");
  return lif::run_main(argc, argv, "lif_ort_runner", "onnx",
                       [&env](const lif::Json& artifact, const std::string& path) { return load(env, artifact, path); });
}
