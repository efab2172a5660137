// sqlcommenter tags (https://google.github.io/sqlcommenter/spec/): key='value' pairs separated by
// commas in a SQL comment, keys and values URL-encoded, a quote inside a value escaped as \'.
// Only real comments count: the lexer decides where strings, quoted identifiers and dollar quotes
// are, so a tag spelled inside a literal is data, not a tag.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/sql/lexer.h"
#include "policy/route/route_rules.h"

namespace pgtandem::policy {
namespace {

constexpr size_t kMaxTags = 64;

using Tags = std::vector<std::pair<std::string, std::string>>;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding; false on a truncated or non-hex escape.
bool url_decode(std::string_view in, std::string* out) {
  out->clear();
  size_t i = 0;
  for (;;) {
    const size_t percent = in.find('%', i);
    if (percent == std::string_view::npos) {
      out->append(in.substr(i));
      return true;
    }
    out->append(in.substr(i, percent - i));
    if (percent + 2 >= in.size()) return false;
    const int hi = hex_value(in[percent + 1]);
    const int lo = hex_value(in[percent + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i = percent + 3;
  }
}

class TagListParser {
 public:
  explicit TagListParser(std::string_view body) : s_(body) {}

  // The whole body must be a tag list, or it gives nothing: a comment that merely looks like one
  // in part ("see tenant='1' below") must not route anything.
  bool parse(Tags* out) {
    skip_space();
    if (pos_ == s_.size()) return false;
    for (;;) {
      std::string key;
      std::string value;
      if (!pair(&key, &value)) return false;
      out->emplace_back(std::move(key), std::move(value));
      skip_space();
      if (pos_ == s_.size()) return true;
      if (s_[pos_] != ',') return false;
      ++pos_;
      skip_space();
    }
  }

 private:
  bool pair(std::string* key, std::string* value) {
    const size_t begin = pos_;
    while (pos_ < s_.size() && s_[pos_] != '=' && s_[pos_] != ',' && s_[pos_] != '\'' &&
           !is_space(s_[pos_])) {
      ++pos_;
    }
    if (pos_ == begin) return false;
    if (!url_decode(s_.substr(begin, pos_ - begin), key) || key->empty()) return false;
    skip_space();
    if (pos_ >= s_.size() || s_[pos_] != '=') return false;
    ++pos_;
    skip_space();
    if (pos_ >= s_.size() || s_[pos_] != '\'') return false;
    ++pos_;
    const size_t value_begin = pos_;
    bool escaped = false;
    for (;;) {
      if (pos_ >= s_.size()) return false;
      const char c = s_[pos_++];
      if (c == '\'') break;
      if (c == '\\') {
        if (pos_ >= s_.size()) return false;
        ++pos_;
        escaped = true;
      }
    }
    const std::string_view quoted = s_.substr(value_begin, pos_ - 1 - value_begin);
    if (!escaped) return url_decode(quoted, value);
    // \' stands for ' (and \x for x): undo that first, then the URL encoding beneath it.
    std::string raw;
    raw.reserve(quoted.size());
    for (size_t i = 0; i < quoted.size(); ++i) {
      if (quoted[i] == '\\') ++i;
      raw.push_back(quoted[i]);
    }
    return url_decode(raw, value);
  }

  void skip_space() {
    while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
  }

  std::string_view s_;
  size_t pos_ = 0;
};

void add_comment(std::string_view body, Tags* out) {
  const size_t before = out->size();
  if (!TagListParser(body).parse(out)) {
    out->resize(before);
    return;
  }
  if (out->size() > kMaxTags) out->resize(kMaxTags);
}

// `gap` is text between two tokens: only whitespace and complete comments (the lexer checked).
void scan_gap(std::string_view gap, Tags* out) {
  size_t i = 0;
  const size_t n = gap.size();
  while (i < n && out->size() < kMaxTags) {
    if (i + 1 < n && gap[i] == '-' && gap[i + 1] == '-') {
      const size_t begin = i + 2;
      i = begin;
      while (i < n && gap[i] != '\n' && gap[i] != '\r') ++i;
      add_comment(gap.substr(begin, i - begin), out);
    } else if (i + 1 < n && gap[i] == '/' && gap[i + 1] == '*') {
      const size_t begin = i + 2;
      i = begin;
      int depth = 1;
      while (i + 1 < n) {
        if (gap[i] == '/' && gap[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (gap[i] == '*' && gap[i + 1] == '/') {
          i += 2;
          if (--depth == 0) break;
        } else {
          ++i;
        }
      }
      if (depth != 0) return;
      const std::string_view body = gap.substr(begin, i - 2 - begin);
      // A nested comment makes the body something other than a tag list: no tags from it.
      if (body.find("/*") == std::string_view::npos) add_comment(body, out);
    } else {
      ++i;
    }
  }
}

}  // namespace

std::vector<std::pair<std::string, std::string>> parse_sql_tags(std::string_view sql) {
  Tags tags;
  if (sql.find("/*") == std::string_view::npos && sql.find("--") == std::string_view::npos) {
    return tags;
  }
  tags.reserve(8);
  Lexer lexer(sql);
  size_t gap_begin = 0;
  for (;;) {
    const Token t = lexer.next();
    // A statement the server's scanner rejects (unterminated comment or string, NUL) is not run,
    // so it has no tags worth routing on.
    if (t.kind == TokenKind::kError) return {};
    const size_t token_begin =
        t.kind == TokenKind::kEnd ? sql.size() : static_cast<size_t>(t.text.data() - sql.data());
    if (token_begin > gap_begin && tags.size() < kMaxTags) {
      scan_gap(sql.substr(gap_begin, token_begin - gap_begin), &tags);
    }
    if (t.kind == TokenKind::kEnd) break;
    gap_begin = token_begin + t.text.size();
  }
  return tags;
}

}  // namespace pgtandem::policy
