// Reader for the .npy golden-vector files (little-endian float32/float64, C order).
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace lif {

enum class DType { Float32, Float64 };

inline size_t dtype_size(DType d) { return d == DType::Float32 ? 4 : 8; }
inline const char* dtype_name(DType d) { return d == DType::Float32 ? "float32" : "float64"; }
inline DType parse_dtype(const std::string& name) {
  if (name == "float32") return DType::Float32;
  if (name == "float64") return DType::Float64;
  throw std::invalid_argument("unsupported dtype '" + name + "' (float32 or float64)");
}

// A dense tensor owning its bytes.
struct Array {
  DType dtype = DType::Float32;
  std::vector<int64_t> shape;
  std::vector<char> bytes;

  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
  // Bytes of one slice along the first dimension.
  size_t slice_bytes() const { return shape.empty() ? 0 : bytes.size() / static_cast<size_t>(shape[0]); }
  const char* slice(int64_t t) const { return bytes.data() + static_cast<size_t>(t) * slice_bytes(); }
  std::vector<int64_t> slice_shape() const { return {shape.begin() + 1, shape.end()}; }
  // Rows [begin, end) along the first dimension, as a new array.
  Array rows(int64_t begin, int64_t end) const {
    Array out{dtype, shape, {}};
    out.shape[0] = end - begin;
    out.bytes.assign(slice(begin), slice(begin) + static_cast<size_t>(end - begin) * slice_bytes());
    return out;
  }
  Array step(int64_t t) const {
    Array out{dtype, slice_shape(), {}};
    out.bytes.assign(slice(t), slice(t) + slice_bytes());
    return out;
  }
};

inline Array read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  char magic[6];
  in.read(magic, 6);
  if (std::memcmp(magic, "\x93NUMPY", 6) != 0) throw std::runtime_error(path + ": not a .npy file");
  unsigned char version[2];
  in.read(reinterpret_cast<char*>(version), 2);
  uint32_t header_len = 0;
  if (version[0] == 1) {
    unsigned char len[2];
    in.read(reinterpret_cast<char*>(len), 2);
    header_len = len[0] | (len[1] << 8);
  } else {
    unsigned char len[4];
    in.read(reinterpret_cast<char*>(len), 4);
    header_len = len[0] | (len[1] << 8) | (len[2] << 16) | (static_cast<uint32_t>(len[3]) << 24);
  }
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);

  Array a;
  if (header.find("'<f4'") != std::string::npos) a.dtype = DType::Float32;
  else if (header.find("'<f8'") != std::string::npos) a.dtype = DType::Float64;
  else throw std::runtime_error(path + ": only little-endian float32/float64 are supported");
  if (header.find("'fortran_order': False") == std::string::npos)
    throw std::runtime_error(path + ": Fortran-ordered arrays are not supported");
  size_t open = header.find('(', header.find("'shape'"));
  size_t close = header.find(')', open);
  std::string dims = header.substr(open + 1, close - open - 1);
  size_t pos = 0;
  while (pos < dims.size()) {
    size_t comma = dims.find(',', pos);
    std::string item = dims.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    if (item.find_first_not_of(" ") != std::string::npos) a.shape.push_back(std::stoll(item));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  a.bytes.resize(static_cast<size_t>(a.numel()) * dtype_size(a.dtype));
  in.read(a.bytes.data(), static_cast<std::streamsize>(a.bytes.size()));
  if (in.gcount() != static_cast<std::streamsize>(a.bytes.size())) throw std::runtime_error(path + ": truncated");
  return a;
}

}  // namespace lif
