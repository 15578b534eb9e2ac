// models/manifest.json, parsed with nlohmann::json and validated into plain structs
// before anything runs. Every field the runners use is checked for presence, type
// and consistency; a problem is an InputError naming the file and the field, e.g.
//   models/manifest.json: artifacts[2].inputs[0].shape[1]: expected an integer >= 0, got -3
// The JSON Schema (lif_export/export/manifest.schema.json) is the full statement.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "error.hpp"
#include "npy.hpp"

namespace lif {

constexpr int kManifestVersion = 1;

// DIR/NAME, without doubling a trailing slash of DIR.
inline std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

// One dimension of a manifest shape: fixed (a size) or dynamic (a name such as "batch").
struct Dim {
  std::string name;  // empty: fixed
  int64_t size = 0;
  bool named() const { return !name.empty(); }
};

inline std::string dims_str(const std::vector<Dim>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + (dims[i].named() ? dims[i].name : std::to_string(dims[i].size));
  return s + "]";
}

struct TensorSpec {
  std::string name;
  DType dtype = DType::Float32;
  std::vector<Dim> shape;
  // The sizes of a shape without dynamic dimensions (the golden vectors').
  std::vector<int64_t> fixed_shape() const {
    std::vector<int64_t> s;
    for (const Dim& d : shape) s.push_back(d.size);
    return s;
  }
};

struct StateSpec {
  std::string input, output;
  std::string trace;  // golden tensor with this state after every step; may be empty
  double initial_value = 0.0;
};

struct Artifact {
  std::string name, file, format, kind, method;
  std::string calling_convention = "flat";  // or "state_list" (TorchScript networks)
  std::vector<TensorSpec> inputs, outputs;
  std::vector<StateSpec> state;

  bool sequence() const { return kind == "sequence"; }
  const StateSpec* state_of_input(const std::string& n) const {
    for (const auto& s : state) if (s.input == n) return &s;
    return nullptr;
  }
  const StateSpec* state_of_output(const std::string& n) const {
    for (const auto& s : state) if (s.output == n) return &s;
    return nullptr;
  }
};

// One golden-vector case: its tensors, all of fixed shape.
struct VectorCase {
  std::string name, dir;
  int64_t steps = 0;
  std::vector<TensorSpec> inputs, outputs;
};

struct Manifest {
  std::string path;
  std::vector<Artifact> artifacts;
  std::vector<VectorCase> vectors;
};

namespace manifest_detail {

using nlohmann::json;

// A JSON value and where it sits in the manifest, for error messages.
class Field {
 public:
  Field(const json& value, const std::string& file, std::string where)
      : j_(&value), file_(&file), where_(std::move(where)) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(*file_ + ": " + (where_.empty() ? "" : where_ + ": ") + what);
  }
  const json& value() const { return *j_; }
  const std::string& where() const { return where_; }

  // The value, abbreviated, with its type: `string "abc"`, `number -3`.
  std::string describe() const {
    std::string text = j_->dump(-1, ' ', false, json::error_handler_t::replace);
    if (text.size() > 40) text = text.substr(0, 37) + "...";
    return std::string(j_->type_name()) + " " + text;
  }
  bool has(const std::string& key) const { return j_->is_object() && j_->contains(key); }
  Field operator[](const std::string& key) const {
    if (!j_->is_object()) fail("expected an object, got " + describe());
    auto it = j_->find(key);
    if (it == j_->end()) fail("missing '" + key + "'");
    return Field(*it, *file_, where_.empty() ? key : where_ + "." + key);
  }
  std::vector<Field> items() const {
    if (!j_->is_array()) fail("expected an array, got " + describe());
    std::vector<Field> out;
    for (size_t i = 0; i < j_->size(); ++i) out.emplace_back((*j_)[i], *file_, where_ + "[" + std::to_string(i) + "]");
    return out;
  }
  std::string str() const {
    if (!j_->is_string() || j_->get_ref<const std::string&>().empty())
      fail("expected a non-empty string, got " + describe());
    return j_->get<std::string>();
  }
  std::string one_of(std::initializer_list<const char*> choices) const {
    std::string s = str(), list;
    for (const char* c : choices) {
      if (s == c) return s;
      list += std::string(list.empty() ? "" : ", ") + "'" + c + "'";
    }
    fail("expected one of " + list + ", got '" + s + "'");
  }
  int64_t integer(int64_t min, int64_t max) const {
    if (!j_->is_number_integer() ||
        (j_->is_number_unsigned() && j_->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())))
      fail("expected an integer, got " + describe());
    int64_t v = j_->get<int64_t>();
    if (v < min) fail("expected an integer >= " + std::to_string(min) + ", got " + std::to_string(v));
    if (v > max) fail("expected an integer <= " + std::to_string(max) + ", got " + std::to_string(v));
    return v;
  }
  double number() const {
    if (!j_->is_number()) fail("expected a number, got " + describe());
    return j_->get<double>();
  }

 private:
  const json* j_;
  const std::string* file_;
  std::string where_;
};

inline std::vector<Dim> parse_dims(const Field& f, bool fixed_only) {
  std::vector<Dim> dims;
  for (const Field& d : f.items()) {
    if (d.value().is_string() && !fixed_only) {
      dims.push_back({d.str(), 0});
    } else if (d.value().is_number_integer()) {
      dims.push_back({"", d.integer(0, kMaxElements)});
    } else {
      d.fail(std::string(fixed_only ? "expected an integer >= 0" : "expected an integer >= 0 or a name") + ", got " +
             d.describe());
    }
  }
  return dims;
}

inline std::vector<TensorSpec> parse_tensors(const Field& list, bool fixed_only) {
  std::vector<TensorSpec> out;
  std::set<std::string> seen;
  for (const Field& t : list.items()) {
    TensorSpec spec;
    spec.name = t["name"].str();
    spec.dtype = parse_dtype(t["dtype"].one_of({"float32", "float64"}));
    spec.shape = parse_dims(t["shape"], fixed_only);
    if (!seen.insert(spec.name).second) t["name"].fail("'" + spec.name + "' is listed twice");
    out.push_back(std::move(spec));
  }
  return out;
}

inline const TensorSpec* find_tensor(const std::vector<TensorSpec>& list, const std::string& name) {
  for (const auto& t : list) if (t.name == name) return &t;
  return nullptr;
}

inline Artifact parse_artifact(const Field& f) {
  Artifact a;
  a.name = f["name"].str();
  a.file = f["file"].str();
  a.format = f["format"].str();
  a.kind = f["kind"].one_of({"step", "sequence", "stateful_neuron", "stateful_network"});
  a.method = f["method"].str();
  if (f.has("calling_convention")) a.calling_convention = f["calling_convention"].one_of({"flat", "state_list", "stateful"});
  a.inputs = parse_tensors(f["inputs"], false);
  a.outputs = parse_tensors(f["outputs"], false);
  std::set<std::string> state_inputs, state_outputs;
  for (const Field& s : f["state"].items()) {
    StateSpec st;
    st.input = s["input"].str();
    st.output = s["output"].str();
    if (s.has("trace")) st.trace = s["trace"].str();
    st.initial_value = s["initial_value"].number();
    if (!find_tensor(a.inputs, st.input)) s["input"].fail("'" + st.input + "' is not an input of artifact '" + a.name + "'");
    if (!find_tensor(a.outputs, st.output))
      s["output"].fail("'" + st.output + "' is not an output of artifact '" + a.name + "'");
    if (!state_inputs.insert(st.input).second) s["input"].fail("'" + st.input + "' is the input of two states");
    if (!state_outputs.insert(st.output).second) s["output"].fail("'" + st.output + "' is the output of two states");
    a.state.push_back(std::move(st));
  }
  bool driven = false;
  for (const auto& t : a.inputs) driven |= !a.state_of_input(t.name);
  if (!driven) f["inputs"].fail("artifact '" + a.name + "' has no input besides its state: nothing to drive it with");
  if (a.sequence()) {  // a sequence's time-major tensors start with the (dynamic) time dimension
    for (const auto* group : {&a.inputs, &a.outputs}) {
      for (const auto& t : *group) {
        if (a.state_of_input(t.name) || a.state_of_output(t.name)) continue;
        if (t.shape.empty() || !t.shape[0].named())
          f.fail("artifact '" + a.name + "' is a sequence, but '" + t.name + "' of shape " + dims_str(t.shape) +
                 " does not start with a named time dimension");
      }
    }
  }
  return a;
}

inline VectorCase parse_vector_case(const Field& f) {
  VectorCase c;
  c.name = f["case"].str();
  c.dir = f["dir"].str();
  c.steps = f["steps"].integer(0, kMaxElements);
  c.inputs = parse_tensors(f["inputs"], true);
  c.outputs = parse_tensors(f["outputs"], true);
  for (const auto& t : c.outputs)
    if (find_tensor(c.inputs, t.name)) f["outputs"].fail("'" + t.name + "' is both an input and an output");
  return c;
}

}  // namespace manifest_detail

// Validates a parsed manifest; `path` names it in error messages.
inline Manifest parse_manifest(const nlohmann::json& root, const std::string& path) {
  using manifest_detail::Field;
  Field top(root, path, "");
  if (!root.is_object()) top.fail("expected a JSON object, got " + top.describe());
  if (!top.has("manifest_version")) top.fail("no manifest_version");
  Field version = top["manifest_version"];
  if (!version.value().is_number()) version.fail("expected a number, got " + version.describe());
  // Version 1 exactly: 1 (or 1.0, equal to it in JSON); never 1.5 truncated to 1.
  if (version.value().get<double>() != static_cast<double>(kManifestVersion)) {
    std::string text = version.value().dump();
    throw InputError(path + ": manifest_version " + text + " is unknown; this runner reads version " +
                     std::to_string(kManifestVersion));
  }
  // The float tier's ordinary Linear/Conv2d layers round differently in each runtime: its golden vectors
  // hold within tolerances (`lif-export verify`), never bit for bit, which is all this runner checks.
  if (top.has("exactness")) {
    Field tier = top["exactness"];
    if (!tier.value().is_string()) tier.fail("expected a string, got " + tier.describe());
    if (tier.value().get<std::string>() != "exact")
      throw InputError(path + ": exactness " + tier.value().dump() + ": this runner checks exact-tier exports bit " +
                       "for bit; judge a float-tier export with `lif-export verify DIR` (--spike-agreement, --atol)");
  }
  Manifest m;
  m.path = path;
  std::set<std::string> names;
  for (const Field& a : top["artifacts"].items()) {
    m.artifacts.push_back(manifest_detail::parse_artifact(a));
    if (!names.insert(m.artifacts.back().name).second)
      a["name"].fail("two artifacts are named '" + m.artifacts.back().name + "'");
  }
  names.clear();
  for (const Field& v : top["vectors"].items()) {
    m.vectors.push_back(manifest_detail::parse_vector_case(v));
    if (!names.insert(m.vectors.back().name).second) v["case"].fail("two cases are named '" + m.vectors.back().name + "'");
  }
  return m;
}

inline std::string names_str(const std::vector<TensorSpec>& tensors) {
  std::string s = "(";
  for (size_t i = 0; i < tensors.size(); ++i) s += (i ? ", " : "") + tensors[i].name;
  return s + ")";
}

// Checks the manifest's entry for an artifact against the copy embedded in its model
// file (ONNX metadata_props / TorchScript extra file "lif_export_manifest.json"):
// same kind, method, calling convention, inputs, outputs and state, in the same order.
// An empty `embedded` (a file written without one) is accepted.
inline void check_embedded_entry(const Artifact& a, const std::string& embedded, const std::string& path) {
  if (embedded.empty()) return;
  const std::string where = path + " (its embedded lif_export_manifest.json)";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(embedded);
  } catch (const nlohmann::json::exception&) {
    throw InputError(where + " is not valid JSON");
  }
  const Artifact e = manifest_detail::parse_artifact(manifest_detail::Field(j, where, ""));
  auto differ = [&](const std::string& what, const std::string& listed, const std::string& embedded_value) {
    throw InputError(path + ": the manifest's entry for artifact '" + a.name + "' does not match the one embedded in the file: " +
                     what + " " + listed + " in the manifest, " + embedded_value + " in the file");
  };
  auto same_tensors = [](const std::vector<TensorSpec>& x, const std::vector<TensorSpec>& y) {
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i)
      if (x[i].name != y[i].name || x[i].dtype != y[i].dtype) return false;
    return true;
  };
  auto state_str = [](const std::vector<StateSpec>& s) {
    std::string out = "(";
    for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + s[i].input + "->" + s[i].output;
    return out + ")";
  };
  if (a.kind != e.kind) differ("kind", a.kind, e.kind);
  if (a.method != e.method) differ("method", a.method, e.method);
  if (a.calling_convention != e.calling_convention)
    differ("calling_convention", a.calling_convention, e.calling_convention);
  if (!same_tensors(a.inputs, e.inputs)) differ("inputs", names_str(a.inputs), names_str(e.inputs));
  if (!same_tensors(a.outputs, e.outputs)) differ("outputs", names_str(a.outputs), names_str(e.outputs));
  bool same_state = a.state.size() == e.state.size();
  for (size_t i = 0; same_state && i < a.state.size(); ++i)
    same_state = a.state[i].input == e.state[i].input && a.state[i].output == e.state[i].output &&
                 a.state[i].trace == e.state[i].trace;
  if (!same_state) differ("state", state_str(a.state), state_str(e.state));
}

// Reads and validates DIR/manifest.json.
inline Manifest load_manifest(const std::string& dir) {
  const std::string path = join_path(dir, "manifest.json");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot read the manifest: cannot open " + path + ": " + std::strerror(errno));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    std::string what = e.what();  // "[json.exception.parse_error.101] parse error at line 1, ..."
    if (!what.empty() && what[0] == '[' && what.find("] ") != std::string::npos) what = what.substr(what.find("] ") + 2);
    throw InputError("cannot read the manifest: " + path + ": " + what);
  }
  return parse_manifest(root, path);
}

}  // namespace lif
