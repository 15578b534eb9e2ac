// Drives an exported lif_export model from its manifest and checks it against the
// golden vectors bit for bit. Runtime-agnostic: a runner supplies one function that
// calls its graph or module (inputs and outputs in the manifest's order).
#pragma once

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "json.hpp"
#include "npy.hpp"

namespace lif {

constexpr int kManifestVersion = 1;

// Bad arguments, files or manifests: exit status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Calls the model once: inputs and outputs in the manifest's order.
using CallFn = std::function<std::vector<Array>(const std::vector<const Array*>& inputs)>;
// Builds a CallFn for one manifest artifact; `path` is the model file.
using Loader = std::function<CallFn(const Json& artifact, const std::string& path)>;

struct Options {
  std::string models_dir;
  std::string case_filter;  // empty: every golden-vector case
  int64_t chunk = 7;        // time steps per call of a sequence graph
  int64_t bench_steps = 0;  // > 0: time the step artifacts instead of checking vectors
  std::vector<int64_t> bench_shape{1, 128};
};

inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

inline Options parse_args(int argc, char** argv, const char* program) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) throw UsageError(std::string(flag) + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::printf(
          "usage: %s MODELS_DIR [--case NAME] [--chunk N] [--bench STEPS [--shape B,N]]\n"
          "Runs every %s artifact listed in MODELS_DIR/manifest.json on every golden-vector case,\n"
          "feeding each state output back into its state input, and compares spikes and\n"
          "potentials bit for bit. Exit 0: all equal; 1: a mismatch; 2: bad arguments or files.\n"
          "--bench STEPS times STEPS steps of each step artifact on one input of --shape\n"
          "(default 1,128) instead, and prints microseconds per step.\n",
          program, program);
      std::exit(0);
    } else if (a == "--case") {
      o.case_filter = next("--case");
    } else if (a == "--chunk") {
      std::string v = next("--chunk");
      char* end = nullptr;
      o.chunk = std::strtoll(v.c_str(), &end, 10);
      if (*end != '\0' || o.chunk < 1) throw UsageError("--chunk must be a positive integer, got '" + v + "'");
    } else if (a == "--bench") {
      std::string v = next("--bench");
      char* end = nullptr;
      o.bench_steps = std::strtoll(v.c_str(), &end, 10);
      if (*end != '\0' || o.bench_steps < 1) throw UsageError("--bench must be a positive integer, got '" + v + "'");
    } else if (a == "--shape") {
      std::string v = next("--shape");
      o.bench_shape.clear();
      std::stringstream parts(v);
      std::string part;
      while (std::getline(parts, part, ',')) {
        char* end = nullptr;
        int64_t d = std::strtoll(part.c_str(), &end, 10);
        if (part.empty() || *end != '\0' || d < 1) throw UsageError("--shape must be positive integers like 1,128, got '" + v + "'");
        o.bench_shape.push_back(d);
      }
    } else if (!a.empty() && a[0] == '-') {
      throw UsageError("unknown option '" + a + "' (see --help)");
    } else if (o.models_dir.empty()) {
      o.models_dir = a;
    } else {
      throw UsageError("unexpected argument '" + a + "' (see --help)");
    }
  }
  if (o.models_dir.empty()) throw UsageError("MODELS_DIR is required (see --help)");
  return o;
}

inline Json load_manifest(const std::string& dir) {
  Json m;
  try {
    m = read_json_file(dir + "/manifest.json");
  } catch (const std::exception& e) {
    throw UsageError(std::string("cannot read the manifest: ") + e.what());
  }
  if (!m.has("manifest_version") || m["manifest_version"].type != Json::Type::Number)
    throw UsageError("manifest.json has no manifest_version");
  int version = static_cast<int>(m["manifest_version"].num());
  if (version != kManifestVersion)
    throw UsageError("manifest_version " + std::to_string(version) + " is unknown; this runner reads version " +
                     std::to_string(kManifestVersion));
  return m;
}

struct GoldenCase {
  std::string name;
  std::map<std::string, Array> tensors;  // by tensor name: inputs and expected outputs
};

inline std::vector<GoldenCase> load_cases(const std::string& dir, const Json& manifest, const std::string& filter) {
  std::vector<GoldenCase> cases;
  const Json& vectors = manifest["vectors"];
  for (size_t i = 0; i < vectors.size(); ++i) {
    const Json& entry = vectors[i];
    if (!filter.empty() && entry["case"].str() != filter) continue;
    GoldenCase c{entry["case"].str(), {}};
    for (const char* group : {"inputs", "outputs"}) {
      for (size_t k = 0; k < entry[group].size(); ++k) {
        const std::string& name = entry[group][k]["name"].str();
        c.tensors[name] = read_npy(dir + "/" + entry["dir"].str() + "/" + name + ".npy");
      }
    }
    cases.push_back(std::move(c));
  }
  if (cases.empty()) throw UsageError("no golden-vector case named '" + filter + "' in the manifest");
  return cases;
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
  if (got.dtype != want.dtype || got.shape != want.shape) {
    if (r.first_difference.empty())
      r.first_difference = what + " at step " + std::to_string(t) + ": got " + dtype_name(got.dtype) +
                           shape_str(got.shape) + ", expected " + dtype_name(want.dtype) + shape_str(want.shape);
    return want.numel();
  }
  size_t width = dtype_size(want.dtype), n = static_cast<size_t>(want.numel());
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
  for (int64_t i = 0; i < a.numel(); ++i) {
    double v = a.dtype == DType::Float32 ? static_cast<double>(reinterpret_cast<const float*>(a.bytes.data())[i])
                                         : reinterpret_cast<const double*>(a.bytes.data())[i];
    n += v != 0.0;
  }
  return n;
}

struct StateSpec {
  std::string input, output, trace;
};

// Checks that the data's shape fits the manifest's (named dims are free, numbers fixed).
inline void check_shape(const Json& spec, const std::vector<int64_t>& shape) {
  const Json& dims = spec["shape"];
  bool ok = dims.size() == shape.size();
  for (size_t i = 0; ok && i < dims.size(); ++i)
    if (dims[i].type == Json::Type::Number && static_cast<int64_t>(dims[i].num()) != shape[i]) ok = false;
  if (!ok) {
    std::string want = "[";
    for (size_t i = 0; i < dims.size(); ++i)
      want += (i ? "," : "") + (dims[i].is_string() ? dims[i].str() : std::to_string(static_cast<int64_t>(dims[i].num())));
    throw UsageError("shape mismatch: '" + spec["name"].str() + "' is " + shape_str(shape) + " but the manifest says " +
                     want + "]");
  }
}

// Runs one golden case through one artifact: step graphs one step per call, sequence
// graphs `chunk` steps per call; every state output is fed back into its input.
inline Result drive(const Json& artifact, const GoldenCase& c, const CallFn& call, int64_t chunk) {
  Result r{artifact["name"].str(), c.name};
  const bool sequence = artifact["kind"].str() == "sequence";
  std::vector<StateSpec> states;
  for (size_t i = 0; i < artifact["state"].size(); ++i) {
    const Json& s = artifact["state"][i];
    states.push_back({s["input"].str(), s["output"].str(), s["trace"].str()});
  }
  auto state_of_input = [&](const std::string& n) -> const StateSpec* {
    for (auto& s : states) if (s.input == n) return &s;
    return nullptr;
  };
  auto state_of_output = [&](const std::string& n) -> const StateSpec* {
    for (auto& s : states) if (s.output == n) return &s;
    return nullptr;
  };
  auto tensor = [&](const std::string& n) -> const Array& {
    auto it = c.tensors.find(n);
    if (it == c.tensors.end()) throw UsageError("golden case '" + c.name + "' has no tensor '" + n + "'");
    return it->second;
  };

  const Json& ins = artifact["inputs"];
  const Json& outs = artifact["outputs"];
  std::map<std::string, Array> state;
  int64_t steps = -1;
  for (size_t i = 0; i < ins.size(); ++i) {
    const std::string& n = ins[i]["name"].str();
    if (state_of_input(n)) {
      state[n] = tensor(n);
      check_shape(ins[i], state[n].shape);
    } else {
      steps = tensor(n).shape.at(0);
      std::vector<int64_t> shape = tensor(n).shape;
      if (!sequence) shape.erase(shape.begin());
      check_shape(ins[i], shape);
    }
  }
  r.steps = steps;
  double total_us = 0.0;
  for (int64_t t0 = 0; t0 < steps; t0 += sequence ? chunk : 1) {
    int64_t t1 = sequence ? std::min(steps, t0 + chunk) : t0 + 1;
    std::vector<Array> feed_data;
    feed_data.reserve(ins.size());
    std::vector<const Array*> feed;
    for (size_t i = 0; i < ins.size(); ++i) {
      const std::string& n = ins[i]["name"].str();
      if (state_of_input(n)) {
        feed.push_back(&state[n]);
      } else {
        feed_data.push_back(sequence ? tensor(n).rows(t0, t1) : tensor(n).step(t0));
        feed.push_back(&feed_data.back());
      }
    }
    auto start = std::chrono::steady_clock::now();
    std::vector<Array> got = call(feed);
    double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
                static_cast<double>(t1 - t0);
    total_us += us * static_cast<double>(t1 - t0);
    r.min_us_per_step = std::min(r.min_us_per_step, us);
    if (got.size() != outs.size())
      throw UsageError("artifact '" + r.artifact + "' returned " + std::to_string(got.size()) + " outputs, manifest lists " +
                       std::to_string(outs.size()));
    for (size_t i = 0; i < outs.size(); ++i) {
      const std::string& n = outs[i]["name"].str();
      if (const StateSpec* s = state_of_output(n)) {
        r.potential_mismatches += compare(got[i], tensor(s->trace).step(t1 - 1), n, t1 - 1, r);
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
  for (auto& s : states) r.potential_mismatches += compare(state[s.input], tensor(s.output), s.output + " (final)", steps, r);
  r.mean_us_per_step = steps > 0 ? total_us / static_cast<double>(steps) : 0.0;
  if (steps <= 0) r.min_us_per_step = 0.0;
  return r;
}

// Times `steps` calls of a step artifact on a fixed input, the state fed back: microseconds per step.
inline double bench_steps(const Json& artifact, const CallFn& call, int64_t steps, const std::vector<int64_t>& shape) {
  const Json& ins = artifact["inputs"];
  DType dtype = parse_dtype(ins[0]["dtype"].str());
  std::map<std::string, std::string> state_out_to_in;
  std::map<std::string, double> initial;
  for (size_t i = 0; i < artifact["state"].size(); ++i) {
    state_out_to_in[artifact["state"][i]["output"].str()] = artifact["state"][i]["input"].str();
    initial[artifact["state"][i]["input"].str()] = artifact["state"][i]["initial_value"].num();
  }
  std::vector<Array> data(ins.size());
  std::vector<const Array*> feed;
  for (size_t i = 0; i < ins.size(); ++i) {
    check_shape(ins[i], shape);
    data[i] = Array{dtype, shape, std::vector<char>(static_cast<size_t>(Array{dtype, shape, {}}.numel()) * dtype_size(dtype))};
    const std::string& n = ins[i]["name"].str();
    double fill = initial.count(n) ? initial[n] : 0.3;  // a constant input that fires periodically
    for (int64_t k = 0; k < data[i].numel(); ++k) {
      if (dtype == DType::Float32) reinterpret_cast<float*>(data[i].bytes.data())[k] = static_cast<float>(fill);
      else reinterpret_cast<double*>(data[i].bytes.data())[k] = fill;
    }
    feed.push_back(&data[i]);
  }
  auto step = [&]() {
    std::vector<Array> out = call(feed);
    for (size_t o = 0; o < out.size(); ++o) {
      auto it = state_out_to_in.find(artifact["outputs"][o]["name"].str());
      if (it == state_out_to_in.end()) continue;
      for (size_t i = 0; i < ins.size(); ++i)
        if (ins[i]["name"].str() == it->second) data[i] = std::move(out[o]);
    }
  };
  for (int64_t t = 0; t < std::min<int64_t>(steps, 100); ++t) step();  // warm-up
  auto start = std::chrono::steady_clock::now();
  for (int64_t t = 0; t < steps; ++t) step();
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
         static_cast<double>(steps);
}

// The whole runner: every artifact of `format` in the manifest, every golden case.
inline int run_main(int argc, char** argv, const char* program, const std::string& format, const Loader& load) {
  try {
    Options opt = parse_args(argc, argv, program);
    Json manifest = load_manifest(opt.models_dir);
    if (opt.bench_steps > 0) {
      const Json& artifacts = manifest["artifacts"];
      for (size_t a = 0; a < artifacts.size(); ++a) {
        const Json& artifact = artifacts[a];
        const std::string kind = artifact["kind"].str();
        if (artifact["format"].str() != format || kind == "sequence") continue;
        CallFn call = load(artifact, opt.models_dir + "/" + artifact["file"].str());
        double us = bench_steps(artifact, call, opt.bench_steps, opt.bench_shape);
        std::printf("bench %s %s %" PRId64 " steps: %.3f us/step\n", artifact["name"].str().c_str(),
                    shape_str(opt.bench_shape).c_str(), opt.bench_steps, us);
      }
      return 0;
    }
    std::vector<GoldenCase> cases = load_cases(opt.models_dir, manifest, opt.case_filter);
    std::printf("%-22s %-16s %6s %7s %8s %8s %10s %10s  %s\n", "artifact", "case", "steps", "spikes", "dspikes", "dv",
                "us/step", "min us", "result");
    int failures = 0, runs = 0;
    const Json& artifacts = manifest["artifacts"];
    for (size_t a = 0; a < artifacts.size(); ++a) {
      const Json& artifact = artifacts[a];
      if (artifact["format"].str() != format) continue;
      std::string path = opt.models_dir + "/" + artifact["file"].str();
      CallFn call = load(artifact, path);
      for (const GoldenCase& c : cases) {
        Result r = drive(artifact, c, call, opt.chunk);
        ++runs;
        failures += !r.ok();
        std::printf("%-22s %-16s %6" PRId64 " %7" PRId64 " %8" PRId64 " %8" PRId64 " %10.2f %10.2f  %s\n",
                    r.artifact.c_str(), r.case_name.c_str(), r.steps, r.spikes, r.spike_mismatches,
                    r.potential_mismatches, r.mean_us_per_step, r.min_us_per_step, r.ok() ? "ok" : "MISMATCH");
        if (!r.ok()) std::printf("  first difference: %s\n", r.first_difference.c_str());
      }
    }
    if (runs == 0) throw UsageError("the manifest lists no " + format + " artifact");
    std::printf("%s: %d runs, %d mismatching\n", failures ? "FAILED" : "OK", runs, failures);
    return failures ? 1 : 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return 2;
  }
}

}  // namespace lif
