// A small JSON reader, enough for lif_export's manifest.json (no dependencies).
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace lif {

struct Json {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  double number = 0.0;
  std::string string;
  std::vector<Json> items;        // Array elements, or Object values
  std::vector<std::string> keys;  // Object keys, parallel to items

  bool has(const std::string& key) const {
    for (const auto& k : keys) if (k == key) return true;
    return false;
  }
  const Json& operator[](const std::string& key) const {
    if (type != Type::Object) throw std::runtime_error("JSON: '" + key + "' looked up in a non-object");
    for (size_t i = 0; i < keys.size(); ++i) if (keys[i] == key) return items[i];
    throw std::runtime_error("JSON: missing key '" + key + "'");
  }
  const Json& operator[](size_t i) const { return items.at(i); }
  size_t size() const { return items.size(); }
  bool is_string() const { return type == Type::String; }
  const std::string& str() const {
    if (type != Type::String) throw std::runtime_error("JSON: expected a string");
    return string;
  }
  double num() const {
    if (type != Type::Number) throw std::runtime_error("JSON: expected a number");
    return number;
  }
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& text) : s_(text) {}
  Json parse() {
    Json v = value();
    skip();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  const std::string& s_;
  size_t i_ = 0;

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("JSON parse error at offset " + std::to_string(i_) + ": " + what);
  }
  void skip() { while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_; }
  bool consume(const char* word) {
    size_t n = std::char_traits<char>::length(word);
    if (s_.compare(i_, n, word) == 0) { i_ += n; return true; }
    return false;
  }
  Json value() {
    skip();
    if (i_ >= s_.size()) fail("unexpected end");
    Json v;
    char c = s_[i_];
    if (c == '{') {
      v.type = Json::Type::Object;
      ++i_;
      skip();
      if (s_[i_] == '}') { ++i_; return v; }
      for (;;) {
        skip();
        v.keys.push_back(string_literal());
        skip();
        if (s_[i_++] != ':') fail("expected ':'");
        v.items.push_back(value());
        skip();
        char d = s_[i_++];
        if (d == '}') return v;
        if (d != ',') fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      v.type = Json::Type::Array;
      ++i_;
      skip();
      if (s_[i_] == ']') { ++i_; return v; }
      for (;;) {
        v.items.push_back(value());
        skip();
        char d = s_[i_++];
        if (d == ']') return v;
        if (d != ',') fail("expected ',' or ']'");
      }
    }
    if (c == '"') { v.type = Json::Type::String; v.string = string_literal(); return v; }
    if (consume("true")) { v.type = Json::Type::Bool; v.boolean = true; return v; }
    if (consume("false")) { v.type = Json::Type::Bool; return v; }
    if (consume("null")) return v;
    if (consume("NaN")) { v.type = Json::Type::Number; v.number = std::nan(""); return v; }
    char* end = nullptr;
    v.number = std::strtod(s_.c_str() + i_, &end);
    if (end == s_.c_str() + i_) fail("unexpected character");
    v.type = Json::Type::Number;
    i_ = static_cast<size_t>(end - s_.c_str());
    return v;
  }
  std::string string_literal() {
    if (s_[i_] != '"') fail("expected a string");
    ++i_;
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c != '\\') { out += c; continue; }
      char e = s_[i_++];
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          unsigned code = std::stoul(s_.substr(i_, 4), nullptr, 16);
          i_ += 4;
          out += code < 0x80 ? static_cast<char>(code) : '?';  // manifest text is ASCII
          break;
        }
        default: out += e;
      }
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }
};

inline Json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return JsonParser(buffer.str()).parse();
}

}  // namespace lif
