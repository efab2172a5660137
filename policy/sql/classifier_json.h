// A minimal JSON reader for libpg_query's parse trees: a flat vector of nodes with views into the
// text. Not a general JSON library: no number conversion, nesting bounded. Internal to routing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgtandem::policy::internal {

class JsonTree {
 public:
  enum class Type : uint8_t { kNull, kTrue, kFalse, kNumber, kString, kArray, kObject };
  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr int kMaxDepth = 1000;

  struct Node {
    Type type = Type::kNull;
    uint32_t first_child = kNone;  // arrays and objects
    uint32_t next = kNone;         // next sibling
    std::string_view key;          // for members of an object (keys never hold escapes here)
    std::string_view raw;          // strings: the content between the quotes, still escaped
  };

  // False on malformed input or nesting deeper than kMaxDepth.
  bool parse(std::string_view text);

  const Node& at(uint32_t i) const { return nodes_[i]; }
  Type type(uint32_t i) const { return i == kNone ? Type::kNull : nodes_[i].type; }
  // The member `key` of object `i`, or kNone.
  uint32_t get(uint32_t i, std::string_view key) const;
  // A string node's value, unescaped ("" for anything else).
  std::string string(uint32_t i) const;
  // A number node's text ("" for anything else).
  std::string_view number(uint32_t i) const;
  bool is_true(uint32_t i) const { return type(i) == Type::kTrue; }

 private:
  uint32_t value(int depth);
  bool string_token(std::string_view* out);
  void skip_space();

  std::vector<Node> nodes_;
  std::string_view text_;
  size_t pos_ = 0;
  bool failed_ = false;
};

}  // namespace pgtandem::policy::internal
