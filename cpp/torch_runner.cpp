// lif_torch_runner: drives lif_export's TorchScript modules through libtorch.
//
// Calls each artifact's method named in manifest.json: `forward` of the step module,
// `step` of the scripted stateful LIFNeuron, `forward_trace` of the sequence module
// (on chunks of steps), feeding each state output back into its state input.
// Networks use the "state_list" calling convention: (x, [states]) -> (out, [states] [, [traces]]).
//
// TorchScript binds arguments by position, so before anything runs the method's
// argument names must be the manifest's inputs in the manifest's order (a manifest
// listing (v, x) is refused, never run with x and v swapped), and the manifest's
// entry must match the copy embedded in the module file.
#include <torch/script.h>

#include <memory>
#include <string>
#include <vector>

#include "common/harness.hpp"

namespace {

// A libtorch error as one line, without its C++ backtrace.
std::string torch_message(const c10::Error& e) {
  std::string text = e.what_without_backtrace();
  return text.substr(0, text.find('\n'));
}

torch::Tensor to_tensor(const lif::Array& a) {
  auto dtype = a.dtype == lif::DType::Float32 ? torch::kFloat32 : torch::kFloat64;
  // from_blob does not copy; the module only reads its inputs.
  return torch::from_blob(const_cast<char*>(a.bytes.data()), a.shape, torch::TensorOptions().dtype(dtype));
}

lif::Array to_array(const torch::Tensor& t, const std::string& artifact) {
  lif::Array a;
  if (t.scalar_type() == torch::kFloat32) a.dtype = lif::DType::Float32;
  else if (t.scalar_type() == torch::kFloat64) a.dtype = lif::DType::Float64;
  else
    throw lif::InputError("artifact '" + artifact + "' returned a tensor of dtype " +
                          std::string(c10::toString(t.scalar_type())) + ", not float32 or float64");
  torch::Tensor c = t.contiguous();
  a.shape.assign(c.sizes().begin(), c.sizes().end());
  const char* data = static_cast<const char*>(c.data_ptr());
  const size_t bytes = static_cast<size_t>(c.numel()) * lif::dtype_size(a.dtype);
  if (bytes > 0) a.bytes.assign(data, data + bytes);
  return a;
}

std::string join(const std::vector<std::string>& names) {
  std::string s = "(";
  for (size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
  return s + ")";
}

// The method's arguments must be the manifest's inputs, by name and in order.
void check_signature(const lif::Artifact& artifact, const torch::jit::Method& method, const std::string& path,
                     bool state_list) {
  std::vector<std::string> params;
  std::vector<bool> has_default, is_list;
  const auto& args = method.function().getSchema().arguments();
  for (size_t i = (!args.empty() && args[0].name() == "self") ? 1 : 0; i < args.size(); ++i) {
    params.push_back(args[i].name());
    has_default.push_back(args[i].default_value().has_value());
    is_list.push_back(args[i].type()->kind() == c10::TypeKind::ListType);
  }

  std::vector<std::string> listed;
  for (const auto& t : artifact.inputs) listed.push_back(t.name);
  const std::string method_desc = path + ": method '" + artifact.method + "' takes " + join(params);

  if (state_list) {  // (x, [states in manifest order])
    bool ok = params.size() >= 2 && params[0] == listed[0] && is_list[1] && !artifact.state_of_input(listed[0]);
    for (size_t i = 1; ok && i < listed.size(); ++i) ok = artifact.state_of_input(listed[i]) != nullptr;
    for (size_t i = 2; ok && i < params.size(); ++i) ok = has_default[i];
    if (!ok)
      throw lif::InputError(method_desc + " (the state_list convention: " + (params.empty() ? "x" : params[0]) +
                            ", then a list of states), but the manifest lists artifact '" + artifact.name +
                            "' with inputs " + join(listed));
    return;
  }
  bool ok = params.size() >= listed.size();
  for (size_t i = 0; ok && i < listed.size(); ++i) ok = params[i] == listed[i] && !is_list[i];
  for (size_t i = listed.size(); ok && i < params.size(); ++i) ok = has_default[i];
  if (!ok)
    throw lif::InputError(method_desc + ", but the manifest lists artifact '" + artifact.name + "' with inputs " +
                          join(listed));
}

lif::CallFn load(const lif::Artifact& artifact, const std::string& path) {
  torch::jit::ExtraFilesMap extra{{"lif_export_manifest.json", ""}};
  std::shared_ptr<torch::jit::Module> module;
  try {
    module = std::make_shared<torch::jit::Module>(torch::jit::load(path, torch::kCPU, extra));
  } catch (const c10::Error& e) {
    throw lif::InputError(path + ": libtorch cannot load it: " + torch_message(e));
  }
  module->eval();
  const std::string method = artifact.method;
  if (!module->find_method(method))
    throw lif::InputError(path + " has no method '" + method + "' (named by the manifest for artifact '" +
                          artifact.name + "')");
  const bool state_list = artifact.calling_convention == "state_list";
  check_signature(artifact, module->get_method(method), path, state_list);
  lif::check_embedded_entry(artifact, extra["lif_export_manifest.json"], path);

  const std::string name = artifact.name;
  return [module, method, state_list, name](const std::vector<const lif::Array*>& inputs) {
    torch::NoGradGuard no_grad;
    std::vector<lif::Array> result;
    try {
      std::vector<torch::jit::IValue> args;
      if (state_list) {  // (x, [state tensors in manifest order])
        c10::List<torch::Tensor> states;
        for (size_t i = 1; i < inputs.size(); ++i) states.push_back(to_tensor(*inputs[i]));
        args = {to_tensor(*inputs[0]), states};
      } else {
        for (const lif::Array* a : inputs) args.emplace_back(to_tensor(*a));
      }
      torch::jit::IValue out = module->get_method(method)(args);
      auto append = [&result, &name](const torch::jit::IValue& value) {
        if (value.isTensorList()) {
          for (const torch::Tensor& t : value.toTensorVector()) result.push_back(to_array(t, name));
        } else {
          result.push_back(to_array(value.toTensor(), name));
        }
      };
      if (out.isTuple()) {
        for (const auto& element : out.toTupleRef().elements()) append(element);
      } else {
        append(out);
      }
    } catch (const c10::Error& e) {
      throw lif::InputError("artifact '" + name + "' failed: " + torch_message(e));
    }
    return result;
  };
}

}  // namespace

int main(int argc, char** argv) {
  return lif::run_main(argc, argv, "lif_torch_runner", "torchscript", load);
}
