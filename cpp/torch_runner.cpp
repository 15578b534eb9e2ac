// lif_torch_runner: drives lif_export's TorchScript modules through libtorch.
//
// Calls each artifact's method named in manifest.json: `forward` of the step module,
// `step` of the scripted stateful LIFNeuron, `forward_trace` of the sequence module
// (on chunks of steps), feeding each state output back into its state input.
// Networks use the "state_list" calling convention: (x, [states]) -> (out, [states] [, [traces]]).
#include <torch/script.h>

#include "common/harness.hpp"

namespace {

torch::Tensor to_tensor(const lif::Array& a) {
  auto dtype = a.dtype == lif::DType::Float32 ? torch::kFloat32 : torch::kFloat64;
  // from_blob does not copy; the module only reads its inputs.
  return torch::from_blob(const_cast<char*>(a.bytes.data()), a.shape, torch::TensorOptions().dtype(dtype));
}

lif::Array to_array(const torch::Tensor& t) {
  torch::Tensor c = t.contiguous();
  lif::Array a;
  a.dtype = c.scalar_type() == torch::kFloat32 ? lif::DType::Float32 : lif::DType::Float64;
  a.shape.assign(c.sizes().begin(), c.sizes().end());
  const char* data = static_cast<const char*>(c.data_ptr());
  a.bytes.assign(data, data + c.numel() * static_cast<int64_t>(lif::dtype_size(a.dtype)));
  return a;
}

lif::CallFn load(const lif::Json& artifact, const std::string& path) {
  torch::jit::ExtraFilesMap extra{{"lif_export_manifest.json", ""}};
  auto module = std::make_shared<torch::jit::Module>(torch::jit::load(path, torch::kCPU, extra));
  module->eval();
  const std::string method = artifact["method"].str();
  if (!module->find_method(method))
    throw lif::UsageError(path + " has no method '" + method + "' (named by the manifest)");
  const bool state_list =
      artifact.has("calling_convention") && artifact["calling_convention"].str() == "state_list";
  return [module, method, state_list](const std::vector<const lif::Array*>& inputs) {
    torch::NoGradGuard no_grad;
    std::vector<torch::jit::IValue> args;
    if (state_list) {  // (x, [state tensors in manifest order])
      c10::List<torch::Tensor> states;
      for (size_t i = 1; i < inputs.size(); ++i) states.push_back(to_tensor(*inputs[i]));
      args = {to_tensor(*inputs[0]), states};
    } else {
      for (const lif::Array* a : inputs) args.emplace_back(to_tensor(*a));
    }
    torch::jit::IValue out = module->get_method(method)(args);
    std::vector<lif::Array> result;
    auto append = [&result](const torch::jit::IValue& value) {
      if (value.isTensorList()) {
        for (const torch::Tensor& t : value.toTensorVector()) result.push_back(to_array(t));
      } else {
        result.push_back(to_array(value.toTensor()));
      }
    };
    if (out.isTuple()) {
      for (const auto& element : out.toTupleRef().elements()) append(element);
    } else {
      append(out);
    }
    return result;
  };
}

}  // namespace

int main(int argc, char** argv) {
  return lif::run_main(argc, argv, "lif_torch_runner", "torchscript", load);
}
