// lif_executorch_runner: drives lif_export's ExecuTorch step programs (.pte) through
// ExecuTorch's C++ Module API, built against the executorch wheel's headers and
// libraries (its CMake package, share/cmake/executorch-config.cmake).
//
// Every "executorch" artifact of manifest.json runs once per time step,
// forward(x, *states) -> (output, *next states), each state output fed back into its
// input; names, order and state pairs come from the manifest. The wheel registers its
// optimized CPU kernels (and the XNNPACK delegate) when their libraries are loaded, so
// a program runs here on the same kernels as in Python's executorch.runtime.
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "common/harness.hpp"

namespace {

using executorch::aten::ScalarType;
using executorch::extension::Module;
using executorch::runtime::EValue;

std::string error_text(executorch::runtime::Error e) {
  return std::string(executorch::runtime::to_string(e)) + " (0x" +
         [](unsigned v) { char b[16]; std::snprintf(b, sizeof b, "%x", v); return std::string(b); }(
             static_cast<unsigned>(e)) + ")";
}

lif::Array to_array(const EValue& value, const std::string& artifact, const std::string& name) {
  if (!value.isTensor()) throw lif::InputError("artifact '" + artifact + "' output '" + name + "' is not a tensor");
  const auto& t = value.toTensor();
  lif::Array a;
  switch (t.scalar_type()) {
    case ScalarType::Float: a.dtype = lif::DType::Float32; break;
    case ScalarType::Double: a.dtype = lif::DType::Float64; break;
    default:
      throw lif::InputError("artifact '" + artifact + "' output '" + name + "' has ExecuTorch scalar type " +
                            std::to_string(static_cast<int>(t.scalar_type())) + ", not float32 or float64");
  }
  for (auto d : t.sizes()) a.shape.push_back(d);
  const char* data = static_cast<const char*>(t.const_data_ptr());
  if (t.nbytes() > 0) a.bytes.assign(data, data + t.nbytes());  // a copy: the planned memory is reused
  return a;
}

// One Module per artifact, its forward loaded up front and checked against the manifest.
lif::CallFn load(const lif::Artifact& artifact, const std::string& path) {
  auto module = std::make_shared<Module>(path, Module::LoadMode::File);
  if (auto err = module->load_method(artifact.method); err != executorch::runtime::Error::Ok)
    throw lif::InputError(path + ": ExecuTorch cannot load method '" + artifact.method + "': " + error_text(err) +
                          " (a program lowered for an operator or delegate this runtime lacks?)");
  auto meta = module->method_meta(artifact.method);
  if (!meta.ok()) throw lif::InputError(path + ": no metadata for method '" + artifact.method + "'");
  if (meta->num_inputs() != artifact.inputs.size() || meta->num_outputs() != artifact.outputs.size())
    throw lif::InputError(path + ": method '" + artifact.method + "' takes " + std::to_string(meta->num_inputs()) +
                          " inputs and returns " + std::to_string(meta->num_outputs()) + " outputs, but the manifest lists " +
                          std::to_string(artifact.inputs.size()) + " and " + std::to_string(artifact.outputs.size()) +
                          " for artifact '" + artifact.name + "'");
  const std::string method = artifact.method, name = artifact.name;
  std::vector<std::string> outputs;
  for (const auto& t : artifact.outputs) outputs.push_back(t.name);
  return [module, method, name, outputs](const std::vector<const lif::Array*>& inputs) {
    std::vector<executorch::extension::TensorPtr> tensors;
    std::vector<EValue> values;
    for (const lif::Array* a : inputs) {
      std::vector<executorch::aten::SizesType> sizes(a->shape.begin(), a->shape.end());
      tensors.push_back(executorch::extension::from_blob(const_cast<char*>(a->bytes.data()), std::move(sizes),
                                                         a->dtype == lif::DType::Float32 ? ScalarType::Float
                                                                                         : ScalarType::Double));
      values.emplace_back(tensors.back());
    }
    auto result = module->execute(method, values);
    if (!result.ok())
      throw lif::InputError("artifact '" + name + "': execute failed: " + error_text(result.error()) +
                            " (an input larger than the program's planned dim_max?)");
    std::vector<lif::Array> arrays;
    for (size_t i = 0; i < result->size(); ++i) arrays.push_back(to_array((*result)[i], name, outputs.at(i)));
    return arrays;
  };
}

}  // namespace

int main(int argc, char** argv) {
  return lif::run_main(argc, argv, "lif_executorch_runner", "executorch", load);
}
