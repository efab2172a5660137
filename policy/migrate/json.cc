#include "policy/migrate/json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace pgtandem::policy::migrate {

Json Json::boolean(bool b) {
  Json j;
  j.type_ = Type::kBool;
  j.b_ = b;
  return j;
}
Json Json::integer(int64_t v) {
  Json j;
  j.type_ = Type::kInt;
  j.i_ = v;
  return j;
}
Json Json::number(double v) {
  Json j;
  j.type_ = Type::kDouble;
  j.d_ = v;
  return j;
}
Json Json::string(std::string s) {
  Json j;
  j.type_ = Type::kString;
  j.s_ = std::move(s);
  return j;
}
Json Json::array(std::vector<Json> items) {
  Json j;
  j.type_ = Type::kArray;
  j.a_ = std::move(items);
  return j;
}
Json Json::object() {
  Json j;
  j.type_ = Type::kObject;
  return j;
}

const Json* Json::get(std::string_view key) const {
  if (type_ != Type::kObject) return nullptr;
  for (const auto& [k, v] : o_)
    if (k == key) return &v;
  return nullptr;
}

Json& Json::set(std::string key, Json value) {
  type_ = Type::kObject;
  for (auto& [k, v] : o_) {
    if (k == key) {
      v = std::move(value);
      return *this;
    }
  }
  o_.emplace_back(std::move(key), std::move(value));
  return *this;
}

Json& Json::push(Json value) {
  type_ = Type::kArray;
  a_.push_back(std::move(value));
  return *this;
}

void append_json_string(std::string* out, std::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          *out += buf;
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

std::string Json::dump() const {
  std::string out;
  dump_to(&out);
  return out;
}

void Json::dump_to(std::string* out) const {
  switch (type_) {
    case Type::kNull: *out += "null"; break;
    case Type::kBool: *out += b_ ? "true" : "false"; break;
    case Type::kInt: *out += std::to_string(i_); break;
    case Type::kDouble: {
      if (!std::isfinite(d_)) {
        *out += "null";
        break;
      }
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.6g", d_);
      *out += buf;
      break;
    }
    case Type::kString: append_json_string(out, s_); break;
    case Type::kArray:
      out->push_back('[');
      for (size_t i = 0; i < a_.size(); ++i) {
        if (i) out->push_back(',');
        a_[i].dump_to(out);
      }
      out->push_back(']');
      break;
    case Type::kObject:
      out->push_back('{');
      for (size_t i = 0; i < o_.size(); ++i) {
        if (i) out->push_back(',');
        append_json_string(out, o_[i].first);
        out->push_back(':');
        o_[i].second.dump_to(out);
      }
      out->push_back('}');
      break;
  }
}

namespace {

struct Parser {
  std::string_view t;
  size_t p = 0;
  std::string err;
  int depth = 0;

  void ws() {
    while (p < t.size() && (t[p] == ' ' || t[p] == '\n' || t[p] == '\r' || t[p] == '\t')) ++p;
  }
  bool fail(const char* what) {
    if (err.empty()) err = std::string(what) + " at offset " + std::to_string(p);
    return false;
  }
  static void put_utf8(std::string* out, uint32_t cp) {
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
  bool hex4(uint32_t* v) {
    if (p + 4 > t.size()) return fail("short \\u escape");
    *v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = t[p++];
      *v <<= 4;
      if (c >= '0' && c <= '9') *v |= c - '0';
      else if (c >= 'a' && c <= 'f') *v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') *v |= c - 'A' + 10;
      else return fail("bad \\u escape");
    }
    return true;
  }
  bool str(std::string* out) {
    ++p;  // opening quote
    while (p < t.size()) {
      char c = t[p++];
      if (c == '"') return true;
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (p >= t.size()) break;
      char e = t[p++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(&cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00 && p + 6 <= t.size() && t[p] == '\\' &&
              t[p + 1] == 'u') {
            p += 2;
            uint32_t lo = 0;
            if (!hex4(&lo)) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_utf8(out, cp);
          break;
        }
        default: return fail("bad escape");
      }
    }
    return fail("unterminated string");
  }
  bool value(Json* out) {
    if (++depth > 64) return fail("nested too deeply");
    ws();
    if (p >= t.size()) return fail("unexpected end");
    const char c = t[p];
    bool ok = true;
    if (c == '{') {
      ++p;
      *out = Json::object();
      ws();
      if (p < t.size() && t[p] == '}') {
        ++p;
      } else {
        for (;;) {
          ws();
          if (p >= t.size() || t[p] != '"') return fail("expected a key");
          std::string key;
          if (!str(&key)) return false;
          ws();
          if (p >= t.size() || t[p] != ':') return fail("expected ':'");
          ++p;
          Json v;
          if (!value(&v)) return false;
          out->set(std::move(key), std::move(v));
          ws();
          if (p < t.size() && t[p] == ',') {
            ++p;
            continue;
          }
          if (p < t.size() && t[p] == '}') {
            ++p;
            break;
          }
          return fail("expected ',' or '}'");
        }
      }
    } else if (c == '[') {
      ++p;
      *out = Json::array();
      ws();
      if (p < t.size() && t[p] == ']') {
        ++p;
      } else {
        for (;;) {
          Json v;
          if (!value(&v)) return false;
          out->push(std::move(v));
          ws();
          if (p < t.size() && t[p] == ',') {
            ++p;
            continue;
          }
          if (p < t.size() && t[p] == ']') {
            ++p;
            break;
          }
          return fail("expected ',' or ']'");
        }
      }
    } else if (c == '"') {
      std::string s;
      ok = str(&s);
      *out = Json::string(std::move(s));
    } else if (t.substr(p, 4) == "true") {
      p += 4;
      *out = Json::boolean(true);
    } else if (t.substr(p, 5) == "false") {
      p += 5;
      *out = Json::boolean(false);
    } else if (t.substr(p, 4) == "null") {
      p += 4;
      *out = Json::null();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t start = p;
      bool is_double = false;
      if (t[p] == '-') ++p;
      while (p < t.size() && ((t[p] >= '0' && t[p] <= '9') || t[p] == '.' || t[p] == 'e' ||
                              t[p] == 'E' || t[p] == '+' || t[p] == '-')) {
        if (t[p] == '.' || t[p] == 'e' || t[p] == 'E') is_double = true;
        ++p;
      }
      std::string num(t.substr(start, p - start));
      char* end = nullptr;
      if (is_double) {
        double d = std::strtod(num.c_str(), &end);
        *out = Json::number(d);
      } else {
        long long v = std::strtoll(num.c_str(), &end, 10);
        *out = Json::integer(v);
      }
      if (end == nullptr || *end != '\0') return fail("bad number");
    } else {
      return fail("unexpected character");
    }
    --depth;
    return ok;
  }
};

}  // namespace

std::optional<Json> Json::parse(std::string_view text, std::string* error) {
  Parser parser;
  parser.t = text;
  Json out;
  if (!parser.value(&out)) {
    if (error) *error = parser.err;
    return std::nullopt;
  }
  parser.ws();
  if (parser.p != text.size()) {
    if (error) *error = "trailing characters at offset " + std::to_string(parser.p);
    return std::nullopt;
  }
  return out;
}

}  // namespace pgtandem::policy::migrate
