// Drives an exported lif_export model from its manifest and checks it against the
// golden vectors bit for bit. Runtime-agnostic: a runner supplies one function that
// loads an artifact and returns a callable running its graph or module (inputs and
// outputs in the manifest's order).
//
// Nothing runs before everything has been checked: the manifest is validated
// (manifest.hpp), every golden .npy file is read and checked against its manifest
// entry, and every (artifact, case) pair is checked for consistent dtypes, shapes and
// step counts. Each check names the file, its shape and the expected shape. After
// that, the driving loop indexes only within the validated shapes.
#pragma once

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "error.hpp"
#include "manifest.hpp"
#include "npy.hpp"

namespace lif {

// Calls the model once: inputs and outputs in the manifest's order.
using CallFn = std::function<std::vector<Array>(const std::vector<const Array*>& inputs)>;
// Loads one manifest artifact from `path` (its model file) and returns its CallFn.
using Loader = std::function<CallFn(const Artifact& artifact, const std::string& path)>;

struct Options {
  std::string models_dir;
  std::string case_filter;  // empty: every golden-vector case
  int64_t chunk = 7;        // time steps per call of a sequence graph
  int64_t bench_steps = 0;  // > 0: time the step artifacts instead of checking vectors
  std::vector<int64_t> bench_shape{1, 128};
};

inline int64_t parse_positive(const std::string& flag, const std::string& v, const char* example) {
  char* end = nullptr;
  errno = 0;
  long long n = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno == ERANGE || n < 1 || n > kMaxElements)
    throw InputError(flag + " must be " + example + ", got '" + v + "'");
  return static_cast<int64_t>(n);
}

inline Options parse_args(int argc, char** argv, const char* program) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) throw InputError(std::string(flag) + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::printf(
          "usage: %s MODELS_DIR [--case NAME] [--chunk N] [--bench STEPS [--shape B,N]]\n"
          "Runs every %s artifact listed in MODELS_DIR/manifest.json on every golden-vector case,\n"
          "feeding each state output back into its state input, and compares spikes and\n"
          "potentials bit for bit. Exit 0: all equal; 1: a mismatch; 2: bad arguments or files\n"
          "(a malformed manifest or .npy file, or a shape that does not match the manifest).\n"
          "--bench STEPS times STEPS steps of each step artifact on one input of --shape\n"
          "(default 1,128) instead, and prints microseconds per step.\n",
          program, program);
      std::exit(0);
    } else if (a == "--case") {
      o.case_filter = next("--case");
    } else if (a == "--chunk") {
      o.chunk = parse_positive("--chunk", next("--chunk"), "a positive integer");
    } else if (a == "--bench") {
      o.bench_steps = parse_positive("--bench", next("--bench"), "a positive integer");
    } else if (a == "--shape") {
      std::string v = next("--shape");
      o.bench_shape.clear();
      std::stringstream parts(v);
      std::string part;
      while (std::getline(parts, part, ','))
        o.bench_shape.push_back(parse_positive("--shape", part, "positive integers like 1,128"));
      if (o.bench_shape.empty()) throw InputError("--shape must be positive integers like 1,128, got '" + v + "'");
    } else if (!a.empty() && a[0] == '-') {
      throw InputError("unknown option '" + a + "' (see --help)");
    } else if (o.models_dir.empty()) {
      o.models_dir = a;
    } else {
      throw InputError("unexpected argument '" + a + "' (see --help)");
    }
  }
  if (o.models_dir.empty()) throw InputError("MODELS_DIR is required (see --help)");
  return o;
}

// One golden tensor and the file it came from.
struct GoldenTensor {
  Array array;
  std::string path;
};

struct GoldenCase {
  std::string name;
  int64_t steps = 0;
  std::map<std::string, GoldenTensor> tensors;  // by tensor name: inputs and expected outputs
  const GoldenTensor& at(const std::string& n) const { return tensors.at(n); }
};

// Reads every .npy file of the selected cases and checks each against its manifest entry.
inline std::vector<GoldenCase> load_cases(const std::string& dir, const Manifest& manifest, const std::string& filter) {
  std::vector<GoldenCase> cases;
  for (const VectorCase& vc : manifest.vectors) {
    if (!filter.empty() && vc.name != filter) continue;
    GoldenCase c{vc.name, vc.steps, {}};
    for (const auto* group : {&vc.inputs, &vc.outputs}) {
      for (const TensorSpec& spec : *group) {
        std::string path = join_path(join_path(dir, vc.dir), spec.name + ".npy");
        Array a = read_npy(path);
        if (a.dtype != spec.dtype)
          throw InputError(path + ": dtype " + dtype_name(a.dtype) + ", but the manifest (case '" + vc.name +
                           "') says " + dtype_name(spec.dtype));
        if (a.shape != spec.fixed_shape())
          throw InputError("shape mismatch: " + path + " is " + shape_str(a.shape) + ", but the manifest (case '" +
                           vc.name + "') says " + shape_str(spec.fixed_shape()));
        c.tensors[spec.name] = GoldenTensor{std::move(a), std::move(path)};
      }
    }
    cases.push_back(std::move(c));
  }
  if (cases.empty()) {
    if (filter.empty()) throw InputError(manifest.path + " lists no golden-vector case");
    throw InputError("no golden-vector case named '" + filter + "' in the manifest");
  }
  return cases;
}

// Matches concrete shapes against manifest shapes: fixed dims must be equal, and a
// named dim ("batch") takes one size throughout the tensors of one artifact and case.
class ShapeMatcher {
 public:
  bool match(const std::vector<Dim>& dims, const std::vector<int64_t>& shape, const std::string& source) {
    if (dims.size() != shape.size()) return false;
    std::map<std::string, int64_t> fresh;
    for (size_t i = 0; i < dims.size(); ++i) {
      if (!dims[i].named()) {
        if (dims[i].size != shape[i]) return false;
        continue;
      }
      auto it = bound_.find(dims[i].name);
      if (it != bound_.end() && it->second.first != shape[i]) return false;
      auto f = fresh.find(dims[i].name);
      if (f != fresh.end() && f->second != shape[i]) return false;
      fresh[dims[i].name] = shape[i];
    }
    for (const auto& [name, size] : fresh) bound_.emplace(name, std::make_pair(size, source));
    return true;
  }
  // The manifest shape with the sizes already bound: "[batch=4 (from 'x'),neurons=8 (from 'x')]".
  std::string expected(const std::vector<Dim>& dims) const {
    std::string s = "[";
    for (size_t i = 0; i < dims.size(); ++i) {
      s += i ? "," : "";
      if (!dims[i].named()) {
        s += std::to_string(dims[i].size);
        continue;
      }
      s += dims[i].name;
      auto it = bound_.find(dims[i].name);
      if (it != bound_.end()) s += "=" + std::to_string(it->second.first) + " (from '" + it->second.second + "')";
    }
    return s + "]";
  }
  // The manifest shape with each named dim replaced by its bound size; empty if a name is still unbound.
  std::optional<std::vector<int64_t>> resolve(const std::vector<Dim>& dims) const {
    std::vector<int64_t> shape;
    for (const Dim& d : dims) {
      if (!d.named()) {
        shape.push_back(d.size);
        continue;
      }
      auto it = bound_.find(d.name);
      if (it == bound_.end()) return std::nullopt;
      shape.push_back(it->second.first);
    }
    return shape;
  }

 private:
  std::map<std::string, std::pair<int64_t, std::string>> bound_;
};

// Checks that the golden case `c` can drive `artifact`: every tensor the artifact reads
// or is compared with exists, has its dtype, `c.steps` leading steps where it is
// time-major, and a shape matching the manifest's. Throws InputError naming the file.
inline void check_case(const Artifact& artifact, const GoldenCase& c) {
  const std::string where = "artifact '" + artifact.name + "'";
  ShapeMatcher shapes;
  auto golden = [&](const TensorSpec& spec, const std::string& name) -> const GoldenTensor& {
    auto it = c.tensors.find(name);
    if (it == c.tensors.end())
      throw InputError("golden case '" + c.name + "' has no tensor '" + name + "' (" + where + " needs it)");
    if (it->second.array.dtype != spec.dtype)
      throw InputError(it->second.path + ": dtype " + dtype_name(it->second.array.dtype) + ", but " + where +
                       " expects " + dtype_name(spec.dtype) + " for '" + spec.name + "'");
    return it->second;
  };
  // A tensor with one row per step: [steps, ...]; the rest must match `spec` (for a
  // sequence, `spec` without its leading time dimension).
  auto check_time_major = [&](const TensorSpec& spec, const std::string& name) {
    const GoldenTensor& g = golden(spec, name);
    const auto& shape = g.array.shape;
    if (shape.empty() || shape[0] != c.steps)
      throw InputError("shape mismatch: " + g.path + " is " + shape_str(shape) + ", but case '" + c.name + "' has " +
                       std::to_string(c.steps) + " steps, so '" + name + "' must be [" + std::to_string(c.steps) +
                       ",...]");
    std::vector<int64_t> per_step(shape.begin() + 1, shape.end());
    std::vector<Dim> dims = spec.shape;
    if (artifact.sequence()) dims.erase(dims.begin());
    if (!shapes.match(dims, per_step, name))
      throw InputError("shape mismatch: '" + name + "' is " + shape_str(per_step) + " per step (" + g.path + " is " +
                       shape_str(shape) + "), but " + where + " expects " + shapes.expected(dims));
  };

  for (const TensorSpec& in : artifact.inputs) {
    if (artifact.state_of_input(in.name)) {
      const GoldenTensor& g = golden(in, in.name);
      if (!shapes.match(in.shape, g.array.shape, in.name))
        throw InputError("shape mismatch: '" + in.name + "' is " + shape_str(g.array.shape) + " (" + g.path + "), but " +
                         where + " expects " + shapes.expected(in.shape));
    } else {
      check_time_major(in, in.name);
    }
  }
  for (const TensorSpec& out : artifact.outputs) {
    const StateSpec* s = artifact.state_of_output(out.name);
    if (!s) {
      check_time_major(out, out.name);
      continue;
    }
    // The final state: the state input's shape; its trace: one of those per step.
    const std::vector<int64_t>& state_shape = c.at(s->input).array.shape;
    const GoldenTensor& final_state = golden(out, out.name);
    if (final_state.array.shape != state_shape)
      throw InputError("shape mismatch: '" + out.name + "' is " + shape_str(final_state.array.shape) + " (" +
                       final_state.path + "), but its state input '" + s->input + "' is " + shape_str(state_shape));
    if (s->trace.empty()) continue;
    const GoldenTensor& trace = golden(out, s->trace);
    std::vector<int64_t> want{c.steps};
    want.insert(want.end(), state_shape.begin(), state_shape.end());
    if (trace.array.shape != want)
      throw InputError("shape mismatch: " + trace.path + " is " + shape_str(trace.array.shape) + ", but the trace of '" +
                       s->input + "' over the " + std::to_string(c.steps) + " steps of case '" + c.name + "' must be " +
                       shape_str(want));
  }
}

struct Result {
  std::string artifact, case_name;
  int64_t steps = 0, spikes = 0, spike_mismatches = 0, potential_mismatches = 0;
  std::string first_difference;
  double mean_us_per_step = 0.0, min_us_per_step = 1e300;
  bool ok() const { return spike_mismatches == 0 && potential_mismatches == 0 && first_difference.empty(); }
};

inline std::string show(const Array& a, size_t i) {
  char buf[96];
  if (a.dtype == DType::Float32) {
    float f;
    uint32_t bits;
    std::memcpy(&f, a.bytes.data() + 4 * i, 4);
    std::memcpy(&bits, &f, 4);
    std::snprintf(buf, sizeof buf, "%.9g (0x%08" PRIx32 ")", static_cast<double>(f), bits);
  } else {
    double d;
    uint64_t bits;
    std::memcpy(&d, a.bytes.data() + 8 * i, 8);
    std::memcpy(&bits, &d, 8);
    std::snprintf(buf, sizeof buf, "%.17g (0x%016" PRIx64 ")", d, bits);
  }
  return buf;
}

// Counts elements whose bits differ; records the first difference.
inline int64_t compare(const Array& got, const Array& want, const std::string& what, int64_t t, Result& r) {
  if (got.dtype != want.dtype || got.shape != want.shape || got.bytes.size() != want.bytes.size()) {
    if (r.first_difference.empty())
      r.first_difference = what + " at step " + std::to_string(t) + ": got " + dtype_name(got.dtype) +
                           shape_str(got.shape) + ", expected " + dtype_name(want.dtype) + shape_str(want.shape);
    return std::max<int64_t>(want.numel(), 1);
  }
  size_t width = dtype_size(want.dtype), n = want.bytes.size() / width;
  int64_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    if (std::memcmp(got.bytes.data() + i * width, want.bytes.data() + i * width, width) == 0) continue;
    if (bad++ == 0 && r.first_difference.empty())
      r.first_difference = what + " at step " + std::to_string(t) + ", flat index " + std::to_string(i) + ": got " +
                           show(got, i) + ", expected " + show(want, i);
  }
  return bad;
}

inline int64_t count_spikes(const Array& a) {
  int64_t n = 0;
  const size_t count = a.bytes.size() / dtype_size(a.dtype);
  for (size_t i = 0; i < count; ++i) n += a.value(i) != 0.0;
  return n;
}

// Runs one golden case through one artifact: step graphs one step per call, sequence
// graphs `chunk` steps per call; every state output is fed back into its input.
// `check_case(artifact, c)` must have passed.
inline Result drive(const Artifact& artifact, const GoldenCase& c, const CallFn& call, int64_t chunk) {
  Result r;
  r.artifact = artifact.name;
  r.case_name = c.name;
  const bool sequence = artifact.sequence();
  auto tensor = [&](const std::string& n) -> const Array& { return c.at(n).array; };

  std::map<std::string, Array> state;
  for (const TensorSpec& in : artifact.inputs)
    if (artifact.state_of_input(in.name)) state[in.name] = tensor(in.name);
  const int64_t steps = c.steps;
  r.steps = steps;
  double total_us = 0.0;
  for (int64_t t0 = 0; t0 < steps; t0 += sequence ? chunk : 1) {
    int64_t t1 = sequence ? std::min(steps, t0 + chunk) : t0 + 1;
    std::vector<Array> feed_data;
    feed_data.reserve(artifact.inputs.size());
    std::vector<const Array*> feed;
    for (const TensorSpec& in : artifact.inputs) {
      if (artifact.state_of_input(in.name)) {
        feed.push_back(&state[in.name]);
      } else {
        feed_data.push_back(sequence ? tensor(in.name).rows(t0, t1) : tensor(in.name).step(t0));
        feed.push_back(&feed_data.back());
      }
    }
    auto start = std::chrono::steady_clock::now();
    std::vector<Array> got = call(feed);
    double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
                static_cast<double>(t1 - t0);
    total_us += us * static_cast<double>(t1 - t0);
    r.min_us_per_step = std::min(r.min_us_per_step, us);
    if (got.size() != artifact.outputs.size())
      throw InputError("artifact '" + r.artifact + "' returned " + std::to_string(got.size()) +
                       " outputs, the manifest lists " + std::to_string(artifact.outputs.size()));
    for (size_t i = 0; i < artifact.outputs.size(); ++i) {
      const std::string& n = artifact.outputs[i].name;
      if (const StateSpec* s = artifact.state_of_output(n)) {
        if (!s->trace.empty()) r.potential_mismatches += compare(got[i], tensor(s->trace).step(t1 - 1), n, t1 - 1, r);
        state[s->input] = std::move(got[i]);
      } else {
        const Array want = sequence ? tensor(n).rows(t0, t1) : tensor(n).step(t0);
        int64_t bad = compare(got[i], want, n, t0, r);
        if (n.find("spike") != std::string::npos) {
          r.spike_mismatches += bad;
          r.spikes += count_spikes(want);
        } else {
          r.potential_mismatches += bad;
        }
      }
    }
  }
  for (const StateSpec& s : artifact.state)
    r.potential_mismatches += compare(state[s.input], tensor(s.output), s.output + " (final)", steps, r);
  r.mean_us_per_step = steps > 0 ? total_us / static_cast<double>(steps) : 0.0;
  if (steps <= 0) r.min_us_per_step = 0.0;
  return r;
}

// Times `steps` calls of a step artifact on a fixed input, the state fed back: microseconds per step.
// `shape` is the shape of the non-state inputs; each state takes the sizes they bind ("batch") and the
// manifest's fixed sizes (a network's hidden layers differ from its input).
inline double bench_steps(const Artifact& artifact, const CallFn& call, int64_t steps, const std::vector<int64_t>& shape) {
  ShapeMatcher matcher;
  for (const TensorSpec& in : artifact.inputs)
    if (!artifact.state_of_input(in.name) && !matcher.match(in.shape, shape, in.name))
      throw InputError("shape mismatch: --shape " + shape_str(shape) + " does not fit '" + in.name + "' of artifact '" +
                       artifact.name + "', " + dims_str(in.shape));
  std::vector<Array> data;
  std::vector<const Array*> feed;
  data.reserve(artifact.inputs.size());
  for (const TensorSpec& in : artifact.inputs) {
    const std::optional<std::vector<int64_t>> in_shape = matcher.resolve(in.shape);
    if (!in_shape)
      throw InputError("state '" + in.name + "' of artifact '" + artifact.name + "' has shape " + dims_str(in.shape) +
                       ", whose named sizes --shape " + shape_str(shape) + " does not bind");
    data.push_back(Array::zeros(in.dtype, *in_shape));
    const StateSpec* s = artifact.state_of_input(in.name);
    double fill = s ? s->initial_value : 0.3;  // a constant input that fires periodically
    Array& a = data.back();
    for (size_t k = 0; k < a.bytes.size() / dtype_size(a.dtype); ++k) {
      if (a.dtype == DType::Float32) {
        float f = static_cast<float>(fill);
        std::memcpy(a.bytes.data() + 4 * k, &f, 4);
      } else {
        std::memcpy(a.bytes.data() + 8 * k, &fill, 8);
      }
    }
    feed.push_back(&a);
  }
  auto step = [&]() {
    std::vector<Array> out = call(feed);
    if (out.size() != artifact.outputs.size())
      throw InputError("artifact '" + artifact.name + "' returned " + std::to_string(out.size()) +
                       " outputs, the manifest lists " + std::to_string(artifact.outputs.size()));
    for (size_t o = 0; o < out.size(); ++o) {
      const StateSpec* s = artifact.state_of_output(artifact.outputs[o].name);
      if (!s) continue;
      for (size_t i = 0; i < artifact.inputs.size(); ++i)
        if (artifact.inputs[i].name == s->input) data[i] = std::move(out[o]);
    }
  };
  for (int64_t t = 0; t < std::min<int64_t>(steps, 100); ++t) step();  // warm-up
  auto start = std::chrono::steady_clock::now();
  for (int64_t t = 0; t < steps; ++t) step();
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
         static_cast<double>(steps);
}

// Loads an artifact's model file after checking that it exists.
inline CallFn load_artifact(const Loader& load, const Artifact& artifact, const std::string& dir) {
  const std::string path = join_path(dir, artifact.file);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw InputError("cannot open model file " + path + " (artifact '" + artifact.name + "'): " +
                     (std::filesystem::exists(path, ec) ? "not a regular file" : "no such file"));
  return load(artifact, path);
}

// The whole runner: every artifact of `format` in the manifest, every golden case.
inline int run_main(int argc, char** argv, const char* program, const std::string& format, const Loader& load) {
  try {
    Options opt = parse_args(argc, argv, program);
    Manifest manifest = load_manifest(opt.models_dir);
    std::vector<const Artifact*> artifacts;
    for (const Artifact& a : manifest.artifacts)
      if (a.format == format) artifacts.push_back(&a);
    if (artifacts.empty()) throw InputError("the manifest lists no " + format + " artifact");

    if (opt.bench_steps > 0) {
      for (const Artifact* artifact : artifacts) {
        if (artifact->sequence()) continue;
        CallFn call = load_artifact(load, *artifact, opt.models_dir);
        double us = bench_steps(*artifact, call, opt.bench_steps, opt.bench_shape);
        std::printf("bench %s %s %" PRId64 " steps: %.3f us/step\n", artifact->name.c_str(),
                    shape_str(opt.bench_shape).c_str(), opt.bench_steps, us);
      }
      return 0;
    }

    // Everything is checked before the first model is loaded or stepped.
    std::vector<GoldenCase> cases = load_cases(opt.models_dir, manifest, opt.case_filter);
    for (const Artifact* artifact : artifacts)
      for (const GoldenCase& c : cases) check_case(*artifact, c);
    std::vector<CallFn> calls;
    for (const Artifact* artifact : artifacts) calls.push_back(load_artifact(load, *artifact, opt.models_dir));

    std::printf("%-22s %-16s %6s %7s %8s %8s %10s %10s  %s\n", "artifact", "case", "steps", "spikes", "dspikes", "dv",
                "us/step", "min us", "result");
    int failures = 0, runs = 0;
    for (size_t a = 0; a < artifacts.size(); ++a) {
      for (const GoldenCase& c : cases) {
        Result r = drive(*artifacts[a], c, calls[a], opt.chunk);
        ++runs;
        failures += !r.ok();
        std::printf("%-22s %-16s %6" PRId64 " %7" PRId64 " %8" PRId64 " %8" PRId64 " %10.2f %10.2f  %s\n",
                    r.artifact.c_str(), r.case_name.c_str(), r.steps, r.spikes, r.spike_mismatches,
                    r.potential_mismatches, r.mean_us_per_step, r.min_us_per_step, r.ok() ? "ok" : "MISMATCH");
        if (!r.ok()) std::printf("  first difference: %s\n", r.first_difference.c_str());
      }
    }
    std::printf("%s: %d runs, %d mismatching\n", failures ? "FAILED" : "OK", runs, failures);
    return failures ? 1 : 0;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: error: %s\n", program, one_line(e.what()).c_str());
    return 2;
  } catch (...) {
    std::fflush(stdout);
    std::fprintf(stderr, "%s: error: unknown exception\n", program);
    return 2;
  }
}

}  // namespace lif
