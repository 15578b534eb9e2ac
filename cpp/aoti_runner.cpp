// lif_aoti_runner: drives lif_export's AOTInductor packages ("aoti" artifacts) through libtorch's
// torch::inductor::AOTIModelPackageLoader.
//
// A package holds the step compiled to native code: run([x, *states]) -> [output, *next states],
// in the manifest's order (the "flat" calling convention); the harness calls it once per step and
// feeds each state output back into its state input. Before anything runs, the manifest's entry
// must match the copy embedded in the package (metadata "lif_export_manifest.json"), and the
// inductor settings the package records (metadata "lif_export_inductor_configs.json") must show
// floating-point contraction off: a package compiled with it may turn beta*v + x into a fused
// multiply-add, which docs/semantics.md forbids, so it is refused.
#include <ATen/ATen.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/harness.hpp"

namespace {

constexpr const char* kManifestKey = "lif_export_manifest.json";
constexpr const char* kConfigsKey = "lif_export_inductor_configs.json";
constexpr const char* kContractFlag = "cpp.enable_floating_point_contract_flag";

// A libtorch error as one line, without its C++ backtrace.
std::string torch_message(const c10::Error& e) {
  std::string text = e.what_without_backtrace();
  return text.substr(0, text.find('\n'));
}

at::Tensor to_tensor(const lif::Array& a) {
  auto dtype = a.dtype == lif::DType::Float32 ? at::kFloat : at::kDouble;
  // from_blob does not copy; the package only reads its inputs.
  return at::from_blob(const_cast<char*>(a.bytes.data()), a.shape, at::TensorOptions().dtype(dtype));
}

lif::Array to_array(const at::Tensor& t, const std::string& artifact) {
  lif::Array a;
  if (t.scalar_type() == at::kFloat) a.dtype = lif::DType::Float32;
  else if (t.scalar_type() == at::kDouble) a.dtype = lif::DType::Float64;
  else
    throw lif::InputError("artifact '" + artifact + "' returned a tensor of dtype " +
                          std::string(c10::toString(t.scalar_type())) + ", not float32 or float64");
  at::Tensor c = t.contiguous();
  a.shape.assign(c.sizes().begin(), c.sizes().end());
  const char* data = static_cast<const char*>(c.data_ptr());
  const size_t bytes = static_cast<size_t>(c.numel()) * lif::dtype_size(a.dtype);
  if (bytes > 0) a.bytes.assign(data, data + bytes);
  return a;
}

// The package must record the settings it was compiled with, contraction off among them.
void check_no_contraction(const std::unordered_map<std::string, std::string>& metadata, const std::string& path) {
  const auto it = metadata.find(kConfigsKey);
  if (it == metadata.end())
    throw lif::InputError(path + " records no inductor settings (" + kConfigsKey + "): export it again with lif_export");
  nlohmann::json configs;
  try {
    configs = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception&) {
    throw lif::InputError(path + ": its " + kConfigsKey + " is not valid JSON");
  }
  const bool off = configs.is_object() && configs.contains(kContractFlag) && configs[kContractFlag].is_string() &&
                   configs[kContractFlag].get<std::string>() == "off";
  if (!off)
    throw lif::InputError(path + " was not compiled with " + kContractFlag + " = \"off\" (its settings: " +
                          it->second + "): beta*v + x may be a fused multiply-add");
}

lif::CallFn load(const lif::Artifact& artifact, const std::string& path) {
  std::shared_ptr<torch::inductor::AOTIModelPackageLoader> loader;
  std::unordered_map<std::string, std::string> metadata;
  try {
    loader = std::make_shared<torch::inductor::AOTIModelPackageLoader>(path);
    metadata = loader->get_metadata();
  } catch (const c10::Error& e) {
    throw lif::InputError(path + ": libtorch cannot load it as an AOTInductor package: " + torch_message(e));
  }
  const auto embedded = metadata.find(kManifestKey);
  lif::check_embedded_entry(artifact, embedded == metadata.end() ? "" : embedded->second, path);
  check_no_contraction(metadata, path);

  const std::string name = artifact.name;
  const size_t outputs = artifact.outputs.size();
  return [loader, name, outputs](const std::vector<const lif::Array*>& inputs) {
    std::vector<lif::Array> result;
    try {
      std::vector<at::Tensor> args;
      args.reserve(inputs.size());
      for (const lif::Array* a : inputs) args.push_back(to_tensor(*a));
      std::vector<at::Tensor> out = loader->run(args);
      if (out.size() != outputs)
        throw lif::InputError("artifact '" + name + "' returned " + std::to_string(out.size()) +
                              " outputs, the manifest lists " + std::to_string(outputs));
      result.reserve(out.size());
      for (const at::Tensor& t : out) result.push_back(to_array(t, name));
    } catch (const c10::Error& e) {
      throw lif::InputError("artifact '" + name + "' failed: " + torch_message(e));
    }
    return result;
  };
}

}  // namespace

int main(int argc, char** argv) {
  return lif::run_main(argc, argv, "lif_aoti_runner", "aoti", load);
}
