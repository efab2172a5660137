// A small JSON value for the migration commands' own files (checkpoints, verify reports, state):
// parse and print, nothing more. Pure. Numbers are kept as int64 when they are integers, as double
// otherwise; objects keep their key order (printing is deterministic).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgtandem::policy::migrate {

class Json {
 public:
  enum class Type { kNull, kBool, kInt, kDouble, kString, kArray, kObject };

  Json() = default;
  static Json null() { return Json(); }
  static Json boolean(bool b);
  static Json integer(int64_t v);
  static Json number(double v);
  static Json string(std::string s);
  static Json array(std::vector<Json> items = {});
  static Json object();

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool as_bool() const { return b_; }
  int64_t as_int() const { return type_ == Type::kDouble ? static_cast<int64_t>(d_) : i_; }
  double as_double() const { return type_ == Type::kInt ? static_cast<double>(i_) : d_; }
  const std::string& as_string() const { return s_; }
  const std::vector<Json>& items() const { return a_; }
  std::vector<Json>& items() { return a_; }
  const std::vector<std::pair<std::string, Json>>& members() const { return o_; }

  // Object access: nullptr when absent (or not an object).
  const Json* get(std::string_view key) const;
  Json& set(std::string key, Json value);  // appends or replaces; returns *this
  Json& push(Json value);                  // arrays

  std::string dump() const;  // compact, one line
  // nullopt on malformed text (*error says where).
  static std::optional<Json> parse(std::string_view text, std::string* error = nullptr);

 private:
  void dump_to(std::string* out) const;
  Type type_ = Type::kNull;
  bool b_ = false;
  int64_t i_ = 0;
  double d_ = 0;
  std::string s_;
  std::vector<Json> a_;
  std::vector<std::pair<std::string, Json>> o_;
};

void append_json_string(std::string* out, std::string_view s);

}  // namespace pgtandem::policy::migrate
