// The runners' error type. Exit codes: 0 all equal, 1 a mismatch, 2 bad arguments,
// files or manifests (an InputError, or any other exception reaching run_main).
#pragma once

#include <stdexcept>
#include <string>

namespace lif {

// A bad argument, file or manifest: exit status 2, the message on one line of stderr.
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The historical name, kept for code written against the first harness.
using UsageError = InputError;

// `text` on a single line: newlines and tabs become spaces, runs of them one space.
inline std::string one_line(const std::string& text) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

}  // namespace lif
