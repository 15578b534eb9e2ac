// Dense float32/float64 arrays and a strict reader for the .npy golden-vector files
// (little-endian, C order, format versions 1.0 to 3.0).
//
// Every malformed file -- missing, truncated, a bad or oversized header, another
// dtype, Fortran order, trailing bytes -- is an InputError naming the file; the
// reader never reads outside the bytes it has. Array keeps the invariant
// bytes.size() == numel() * dtype_size(dtype), and its row accessors check their
// indices against shape[0].
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "error.hpp"

namespace lif {

enum class DType { Float32, Float64 };

inline size_t dtype_size(DType d) { return d == DType::Float32 ? 4 : 8; }
inline const char* dtype_name(DType d) { return d == DType::Float32 ? "float32" : "float64"; }
// "float32" or "float64"; false for anything else.
inline bool dtype_from_name(const std::string& name, DType& out) {
  if (name == "float32") out = DType::Float32;
  else if (name == "float64") out = DType::Float64;
  else return false;
  return true;
}
inline DType parse_dtype(const std::string& name) {
  DType d;
  if (!dtype_from_name(name, d)) throw InputError("unsupported dtype '" + name + "' (float32 or float64)");
  return d;
}

inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// The largest array this reader accepts, in elements (2^48: far beyond any golden
// vector, and small enough that elements * 8 bytes cannot overflow).
constexpr int64_t kMaxElements = int64_t{1} << 48;

// Elements of `shape`; false if a dimension is negative or the product exceeds kMaxElements.
inline bool checked_numel(const std::vector<int64_t>& shape, int64_t& out) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (d == 0) { n = 0; continue; }
    if (n > kMaxElements / d) return false;
    n *= d;
  }
  out = n;
  return true;
}

// A dense tensor owning its bytes.
struct Array {
  DType dtype = DType::Float32;
  std::vector<int64_t> shape;
  std::vector<char> bytes;

  // An array of `shape` filled with zero bytes.
  static Array zeros(DType dtype, std::vector<int64_t> shape) {
    int64_t n = 0;
    if (!checked_numel(shape, n)) throw InputError("invalid array shape " + shape_str(shape));
    Array a{dtype, std::move(shape), {}};
    a.bytes.assign(static_cast<size_t>(n) * dtype_size(dtype), 0);
    return a;
  }

  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  // Leading-dimension length (time steps of a golden tensor).
  int64_t length() const {
    if (shape.empty()) throw std::out_of_range("a 0-dimensional array has no rows");
    return shape[0];
  }
  // Bytes of one slice along the first dimension (the product of the others, never a division).
  size_t slice_bytes() const {
    if (shape.empty()) throw std::out_of_range("a 0-dimensional array has no rows");
    size_t n = dtype_size(dtype);
    for (size_t i = 1; i < shape.size(); ++i) n *= static_cast<size_t>(shape[i]);
    return n;
  }
  std::vector<int64_t> slice_shape() const {
    if (shape.empty()) throw std::out_of_range("a 0-dimensional array has no rows");
    return {shape.begin() + 1, shape.end()};
  }
  // Rows [begin, end) along the first dimension, as a new array.
  Array rows(int64_t begin, int64_t end) const {
    if (shape.empty() || begin < 0 || end < begin || end > shape[0])
      throw std::out_of_range("rows [" + std::to_string(begin) + "," + std::to_string(end) + ") of an array of shape " +
                              shape_str(shape));
    Array out{dtype, shape, {}};
    out.shape[0] = end - begin;
    const size_t width = slice_bytes();
    const char* first = bytes.data() + static_cast<size_t>(begin) * width;
    out.bytes.assign(first, first + static_cast<size_t>(end - begin) * width);
    return out;
  }
  // Row t (one time step), without the leading dimension.
  Array step(int64_t t) const {
    if (shape.empty() || t < 0 || t >= shape[0])
      throw std::out_of_range("step " + std::to_string(t) + " of an array of shape " + shape_str(shape));
    Array out{dtype, slice_shape(), {}};
    const size_t width = slice_bytes();
    const char* first = bytes.data() + static_cast<size_t>(t) * width;
    out.bytes.assign(first, first + width);
    return out;
  }
  // Element i as a double (i < numel()).
  double value(size_t i) const {
    if (dtype == DType::Float32) {
      float f;
      std::memcpy(&f, bytes.data() + 4 * i, 4);
      return static_cast<double>(f);
    }
    double d;
    std::memcpy(&d, bytes.data() + 8 * i, 8);
    return d;
  }
};

namespace npy_detail {

// A cursor over the header text: a Python dict literal such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (100, 4, 8), }
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  void parse(std::string& descr, bool& fortran, std::vector<int64_t>& shape) {
    bool has_descr = false, has_fortran = false, has_shape = false;
    skip();
    expect('{');
    for (;;) {
      skip();
      if (peek() == '}') { ++i_; break; }
      std::string key = quoted();
      skip();
      expect(':');
      skip();
      if (key == "descr" && !has_descr) {
        descr = quoted();
        has_descr = true;
      } else if (key == "fortran_order" && !has_fortran) {
        fortran = boolean();
        has_fortran = true;
      } else if (key == "shape" && !has_shape) {
        shape = tuple();
        has_shape = true;
      } else {
        fail("unexpected or repeated key '" + key + "'");
      }
      skip();
      if (peek() == ',') { ++i_; continue; }
      expect('}');
      break;
    }
    skip();
    if (i_ != s_.size()) fail("trailing characters after the header dict");
    if (!has_descr || !has_fortran || !has_shape) fail("the header dict lacks 'descr', 'fortran_order' or 'shape'");
  }

 private:
  const std::string& s_;
  const std::string& path_;
  size_t i_ = 0;

  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(path_ + ": malformed .npy header (" + what + ")");
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t' || s_[i_] == '\r')) ++i_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "' at offset " + std::to_string(i_));
    ++i_;
  }
  std::string quoted() {
    char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string at offset " + std::to_string(i_));
    ++i_;
    size_t end = s_.find(q, i_);
    if (end == std::string::npos) fail("unterminated string");
    std::string out = s_.substr(i_, end - i_);
    i_ = end + 1;
    return out;
  }
  bool boolean() {
    if (s_.compare(i_, 4, "True") == 0) { i_ += 4; return true; }
    if (s_.compare(i_, 5, "False") == 0) { i_ += 5; return false; }
    fail("fortran_order must be True or False");
  }
  std::vector<int64_t> tuple() {
    std::vector<int64_t> dims;
    expect('(');
    for (;;) {
      skip();
      if (peek() == ')') { ++i_; return dims; }
      if (peek() < '0' || peek() > '9') fail("shape entries must be non-negative integers");
      int64_t d = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (d > (kMaxElements - 9) / 10) fail("shape entry too large");
        d = d * 10 + (s_[i_++] - '0');
      }
      if (peek() == 'L') ++i_;  // Python 2 long
      dims.push_back(d);
      skip();
      if (peek() == ',') { ++i_; continue; }
      expect(')');
      return dims;
    }
  }
};

inline uint32_t little_endian(const unsigned char* p, size_t n) {
  uint32_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}

}  // namespace npy_detail

// Reads a whole .npy file; throws InputError naming `path` for anything it cannot take.
inline Array read_npy(const std::string& path) {
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status))
    throw InputError("cannot open " + path + ": " + (ec ? ec.message() : std::string("no such file")));
  if (!std::filesystem::is_regular_file(status)) throw InputError("cannot open " + path + ": not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot open " + path + ": " + std::strerror(errno));
  std::vector<char> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw InputError("cannot read " + path);
  const auto* u = reinterpret_cast<const unsigned char*>(file.data());
  const size_t size = file.size();

  if (size < 8 || std::memcmp(file.data(), "\x93NUMPY", 6) != 0)
    throw InputError(path + ": not a .npy file (no \\x93NUMPY magic)");
  const unsigned major = u[6], minor = u[7];
  size_t len_bytes = 0;
  if (major == 1) len_bytes = 2;
  else if (major == 2 || major == 3) len_bytes = 4;
  else
    throw InputError(path + ": unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor));
  if (size < 8 + len_bytes) throw InputError(path + ": truncated .npy header");
  const size_t header_len = npy_detail::little_endian(u + 8, len_bytes);
  const size_t data_start = 8 + len_bytes + header_len;
  if (header_len > size - 8 - len_bytes)
    throw InputError(path + ": truncated .npy header (the header length is " + std::to_string(header_len) +
                     " bytes, the file has " + std::to_string(size - 8 - len_bytes) + " after it)");
  const std::string header(file.data() + 8 + len_bytes, header_len);

  std::string descr;
  bool fortran = false;
  Array a;
  npy_detail::HeaderParser(header, path).parse(descr, fortran, a.shape);
  if (descr == "<f4") a.dtype = DType::Float32;
  else if (descr == "<f8") a.dtype = DType::Float64;
  else
    throw InputError(path + ": dtype '" + descr + "' is not supported (little-endian float32 '<f4' or float64 '<f8')");
  if (fortran) throw InputError(path + ": Fortran-ordered arrays are not supported (save it in C order)");
  int64_t n = 0;
  if (!checked_numel(a.shape, n)) throw InputError(path + ": shape " + shape_str(a.shape) + " is too large");
  const size_t need = static_cast<size_t>(n) * dtype_size(a.dtype);
  const size_t have = size - data_start;
  if (have < need)
    throw InputError(path + ": truncated: a " + std::string(dtype_name(a.dtype)) + " array of shape " +
                     shape_str(a.shape) + " needs " + std::to_string(need) + " data bytes, the file has " +
                     std::to_string(have));
  if (have > need)
    throw InputError(path + ": " + std::to_string(have - need) + " unexpected bytes after the data of a " +
                     dtype_name(a.dtype) + " array of shape " + shape_str(a.shape));
  a.bytes.assign(file.begin() + static_cast<std::ptrdiff_t>(data_start), file.end());
  return a;
}

}  // namespace lif
