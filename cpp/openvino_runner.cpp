// lif_openvino_runner: drives lif_export's stateful OpenVINO IR (<prefix>_step.xml/.bin)
// through the OpenVINO C++ API on the CPU plugin, built against the openvino wheel's
// OpenVINOConfig.cmake.
//
// The IR takes only x; every state of the manifest is a variable of the model
// (ReadValue/Assign, found by the state input's name), which the runner reads after each
// step. To the harness it looks like the other runners' step artifacts,
// (x, *states) -> (output, *next states): states fed back unchanged stay in the model;
// new initial states start the request over, with reset_state() when they are the
// manifest's initial_value and VariableState::set_state otherwise. The IR is compiled
// with the entry's runtime_config (INFERENCE_PRECISION_HINT=f32), read from manifest.json.
#include <openvino/openvino.hpp>
#include <openvino/op/util/read_value_base.hpp>

#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/harness.hpp"

namespace {

ov::element::Type ov_type(lif::DType d) { return d == lif::DType::Float32 ? ov::element::f32 : ov::element::f64; }

lif::Array to_array(const ov::Tensor& t, const std::string& artifact, const std::string& name) {
  lif::Array a;
  if (t.get_element_type() == ov::element::f32) {
    a.dtype = lif::DType::Float32;
  } else if (t.get_element_type() == ov::element::f64) {
    a.dtype = lif::DType::Float64;
  } else {
    throw lif::InputError("artifact '" + artifact + "' tensor '" + name + "' has element type " +
                          t.get_element_type().get_type_name() + ", not float32 or float64");
  }
  for (auto d : t.get_shape()) a.shape.push_back(static_cast<int64_t>(d));
  const char* data = static_cast<const char*>(t.data());
  if (t.get_byte_size() > 0) a.bytes.assign(data, data + t.get_byte_size());
  return a;
}

// The entry's "runtime_config" in manifest.json (the C++ manifest parser keeps only what every runner needs).
ov::AnyMap runtime_config(const std::string& dir, const std::string& artifact) {
  const std::string path = lif::join_path(dir, "manifest.json");
  std::ifstream in(path, std::ios::binary);
  nlohmann::json root = nlohmann::json::parse(std::string(std::istreambuf_iterator<char>(in), {}));
  ov::AnyMap config;
  for (const auto& entry : root.at("artifacts"))
    if (entry.at("name") == artifact && entry.contains("runtime_config"))
      for (const auto& [key, value] : entry.at("runtime_config").items()) config[key] = value.get<std::string>();
  return config;
}

struct Stateful {
  ov::InferRequest request;
  std::vector<std::string> variables;    // per manifest state, in the artifact's state order
  std::vector<size_t> state_input;       // index in the call's inputs of each state
  std::vector<size_t> state_output;      // index in the call's outputs of each state
  std::vector<double> initial;           // each state's initial_value
  std::vector<lif::Array> current;       // the states as last returned (empty: not started)
  std::string output, artifact;

  ov::VariableState variable(const std::string& id) {
    for (auto& v : request.query_state())
      if (v.get_name() == id) return v;
    throw lif::InputError("artifact '" + artifact + "': the model has no variable '" + id + "'");
  }

  static bool all_equal(const lif::Array& a, double value) {
    const size_t n = a.bytes.size() / lif::dtype_size(a.dtype);
    for (size_t i = 0; i < n; ++i) {
      if (a.dtype == lif::DType::Float32) {
        float f = static_cast<float>(value), g;
        std::memcpy(&g, a.bytes.data() + 4 * i, 4);
        if (std::memcmp(&f, &g, 4) != 0) return false;
      } else if (std::memcmp(&value, a.bytes.data() + 8 * i, 8) != 0) {
        return false;
      }
    }
    return true;
  }

  // Starts over from the given states unless they are the ones this request holds.
  void load_states(const std::vector<const lif::Array*>& inputs) {
    bool same = current.size() == variables.size();
    for (size_t k = 0; same && k < variables.size(); ++k)
      same = inputs[state_input[k]]->shape == current[k].shape && inputs[state_input[k]]->bytes == current[k].bytes;
    if (same) return;
    request.reset_state();
    bool initial_values = true;
    for (size_t k = 0; k < variables.size(); ++k) initial_values &= all_equal(*inputs[state_input[k]], initial[k]);
    if (initial_values) return;
    for (size_t k = 0; k < variables.size(); ++k) {
      const lif::Array& a = *inputs[state_input[k]];
      ov::Tensor t(ov_type(a.dtype), ov::Shape(a.shape.begin(), a.shape.end()));
      std::memcpy(t.data(), a.bytes.data(), a.bytes.size());
      variable(variables[k]).set_state(t);
    }
  }
};

lif::CallFn load(ov::Core& core, const std::string& dir, const lif::Artifact& artifact, const std::string& path) {
  std::shared_ptr<ov::Model> model;
  try {
    model = core.read_model(path);
  } catch (const ov::Exception& e) {
    throw lif::InputError(path + ": OpenVINO cannot read it: " + e.what());
  }
  std::map<std::string, std::string> variable_of;  // state input name -> variable id
  for (const auto& op : model->get_ordered_ops())
    if (auto rv = std::dynamic_pointer_cast<ov::op::util::ReadValueBase>(op))
      for (const auto& n : rv->output(0).get_names()) variable_of[n] = rv->get_variable_id();

  auto s = std::make_shared<Stateful>();
  s->artifact = artifact.name;
  s->output = artifact.outputs.at(0).name;
  for (const lif::StateSpec& st : artifact.state) {
    auto it = variable_of.find(st.input);
    if (it == variable_of.end())
      throw lif::InputError(path + ": no variable for state '" + st.input + "' (not a stateful lif_export IR)");
    s->variables.push_back(it->second);
    s->initial.push_back(st.initial_value);
    for (size_t i = 0; i < artifact.inputs.size(); ++i)
      if (artifact.inputs[i].name == st.input) s->state_input.push_back(i);
    for (size_t o = 0; o < artifact.outputs.size(); ++o)
      if (artifact.outputs[o].name == st.output) s->state_output.push_back(o);
  }
  ov::AnyMap config = runtime_config(dir, artifact.name);
  config[ov::inference_num_threads.name()] = 1;
  config[ov::num_streams.name()] = 1;
  s->request = core.compile_model(model, "CPU", config).create_infer_request();
  const std::string x_name = artifact.inputs.at(0).name;
  const size_t n_outputs = artifact.outputs.size();
  return [s, x_name, n_outputs](const std::vector<const lif::Array*>& inputs) {
    s->load_states(inputs);
    const lif::Array& x = *inputs[0];
    ov::Tensor xt(ov_type(x.dtype), ov::Shape(x.shape.begin(), x.shape.end()), const_cast<char*>(x.bytes.data()));
    s->request.set_tensor(x_name, xt);
    s->request.infer();
    std::vector<lif::Array> result(n_outputs);
    result[0] = to_array(s->request.get_tensor(s->output), s->artifact, s->output);
    s->current.clear();
    for (size_t k = 0; k < s->variables.size(); ++k) {
      s->current.push_back(to_array(s->variable(s->variables[k]).get_state(), s->artifact, s->variables[k]));
      result[s->state_output[k]] = s->current.back();
    }
    return result;
  };
}

std::string models_dir(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--case" || a == "--chunk" || a == "--bench" || a == "--shape") {
      ++i;
    } else if (!a.empty() && a[0] != '-') {
      return a;
    }
  }
  return ".";
}

}  // namespace

int main(int argc, char** argv) {
  try {
    ov::Core core;
    const std::string dir = models_dir(argc, argv);
    return lif::run_main(argc, argv, "lif_openvino_runner", "openvino",
                         [&core, &dir](const lif::Artifact& a, const std::string& path) { return load(core, dir, a, path); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lif_openvino_runner: error: %s\n", lif::one_line(e.what()).c_str());
    return 2;
  }
}
