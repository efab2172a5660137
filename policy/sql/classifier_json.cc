#include "policy/sql/classifier_json.h"

namespace pgtandem::policy::internal {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_utf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

bool JsonTree::parse(std::string_view text) {
  nodes_.clear();
  nodes_.reserve(text.size() / 8 + 8);
  text_ = text;
  pos_ = 0;
  failed_ = false;
  value(0);
  skip_space();
  if (pos_ != text_.size()) failed_ = true;
  return !failed_;
}

void JsonTree::skip_space() {
  while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\r' ||
                                 text_[pos_] == '\t')) {
    ++pos_;
  }
}

bool JsonTree::string_token(std::string_view* out) {
  // text_[pos_] == '"'
  const size_t begin = ++pos_;
  for (;;) {
    const size_t quote = text_.find('"', pos_);
    if (quote == std::string_view::npos) return false;
    // Escaped if preceded by an odd number of backslashes.
    size_t backslashes = 0;
    while (quote - backslashes > begin && text_[quote - backslashes - 1] == '\\') ++backslashes;
    pos_ = quote + 1;
    if (backslashes % 2 == 0) {
      *out = text_.substr(begin, quote - begin);
      return true;
    }
  }
}

uint32_t JsonTree::value(int depth) {
  if (failed_) return kNone;
  if (depth > kMaxDepth) {
    failed_ = true;
    return kNone;
  }
  skip_space();
  if (pos_ >= text_.size()) {
    failed_ = true;
    return kNone;
  }
  const uint32_t index = static_cast<uint32_t>(nodes_.size());
  nodes_.emplace_back();
  const char c = text_[pos_];
  if (c == '{' || c == '[') {
    const bool object = c == '{';
    nodes_[index].type = object ? Type::kObject : Type::kArray;
    ++pos_;
    skip_space();
    const char close = object ? '}' : ']';
    uint32_t last = kNone;
    if (pos_ < text_.size() && text_[pos_] == close) {
      ++pos_;
      return index;
    }
    for (;;) {
      std::string_view key;
      if (object) {
        skip_space();
        if (pos_ >= text_.size() || text_[pos_] != '"' || !string_token(&key)) break;
        skip_space();
        if (pos_ >= text_.size() || text_[pos_] != ':') break;
        ++pos_;
      }
      const uint32_t child = value(depth + 1);
      if (failed_) return kNone;
      nodes_[child].key = key;
      if (last == kNone) {
        nodes_[index].first_child = child;
      } else {
        nodes_[last].next = child;
      }
      last = child;
      skip_space();
      if (pos_ < text_.size() && text_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < text_.size() && text_[pos_] == close) {
        ++pos_;
        return index;
      }
      break;
    }
    failed_ = true;
    return kNone;
  }
  if (c == '"') {
    std::string_view s;
    if (!string_token(&s)) {
      failed_ = true;
      return kNone;
    }
    nodes_[index].type = Type::kString;
    nodes_[index].raw = s;
    return index;
  }
  auto literal = [&](std::string_view word, Type type) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    nodes_[index].type = type;
    return true;
  };
  if (literal("true", Type::kTrue) || literal("false", Type::kFalse) ||
      literal("null", Type::kNull)) {
    return index;
  }
  const size_t begin = pos_;
  while (pos_ < text_.size() &&
         (text_[pos_] == '-' || text_[pos_] == '+' || text_[pos_] == '.' || text_[pos_] == 'e' ||
          text_[pos_] == 'E' || (text_[pos_] >= '0' && text_[pos_] <= '9'))) {
    ++pos_;
  }
  if (pos_ == begin) {
    failed_ = true;
    return kNone;
  }
  nodes_[index].type = Type::kNumber;
  nodes_[index].raw = text_.substr(begin, pos_ - begin);
  return index;
}

uint32_t JsonTree::get(uint32_t i, std::string_view key) const {
  if (type(i) != Type::kObject) return kNone;
  for (uint32_t c = nodes_[i].first_child; c != kNone; c = nodes_[c].next) {
    if (nodes_[c].key == key) return c;
  }
  return kNone;
}

std::string_view JsonTree::number(uint32_t i) const {
  return type(i) == Type::kNumber ? nodes_[i].raw : std::string_view();
}

std::string JsonTree::string(uint32_t i) const {
  if (type(i) != Type::kString) return {};
  const std::string_view raw = nodes_[i].raw;
  std::string out;
  out.reserve(raw.size());
  for (size_t p = 0; p < raw.size(); ++p) {
    if (raw[p] != '\\' || p + 1 >= raw.size()) {
      out.push_back(raw[p]);
      continue;
    }
    const char e = raw[++p];
    switch (e) {
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        uint32_t cp = 0;
        bool ok = p + 4 < raw.size();
        for (size_t k = 1; ok && k <= 4; ++k) {
          const int h = hex_value(raw[p + k]);
          ok = h >= 0;
          cp = cp * 16 + static_cast<uint32_t>(h);
        }
        if (!ok) {
          out.push_back('?');
          break;
        }
        p += 4;
        // A high surrogate followed by \uDC00-\uDFFF forms one code point.
        if (cp >= 0xD800 && cp < 0xDC00 && p + 6 < raw.size() && raw[p + 1] == '\\' &&
            raw[p + 2] == 'u') {
          uint32_t lo = 0;
          bool lo_ok = true;
          for (size_t k = 3; lo_ok && k <= 6; ++k) {
            const int h = hex_value(raw[p + k]);
            lo_ok = h >= 0;
            lo = lo * 16 + static_cast<uint32_t>(h);
          }
          if (lo_ok && lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
          }
        }
        append_utf8(cp, &out);
        break;
      }
      default:  // " \ /
        out.push_back(e);
        break;
    }
  }
  return out;
}

}  // namespace pgtandem::policy::internal
