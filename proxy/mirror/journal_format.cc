// The mirror journal's line format: one JSON object a line (seq, ts, the session's login and
// state, the unit's frontend messages in base64, why it was journaled), formatted for the writer
// (journal.cc) and parsed for replay and catch-up. Pure text in and out: no file, no lock.
#include "proxy/mirror/journal.h"
#include "protocol/base64.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/telemetry/log.h"

namespace pgtandem::proxy {
namespace {

// Nesting of a journal line: line -> session/unit -> params/primary/prepared -> pair.
constexpr int kMaxDepth = 8;

// ------------------------------------------------------------------------------------------------
// Writer

// Bytes >= 0x80 pass through untouched: valid UTF-8 stays readable, and text cut in the middle of
// a character (first_sql is truncated) or in a non-UTF-8 client encoding still round-trips
// exactly, because the reader passes them through the same way.
void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

void append_base64_string(std::string& out, std::string_view bytes) {
  out += '"';
  protocol::append_base64(out, bytes);
  out += '"';
}

void append_key(std::string& out, std::string_view key) {
  out += '"';
  out += key;
  out += "\":";
}

const char* json_bool(bool b) { return b ? "true" : "false"; }

std::string utc_timestamp_now() { return log::utc_timestamp(std::chrono::system_clock::now()); }

// Everything after "ts": `,"target":...}` (no newline).
std::string format_body(const JournalEntry& e) {
  std::string out;
  out.reserve(256 + e.unit.bytes.size() * 4 / 3);
  out += ',';
  append_key(out, "target");
  append_json_string(out, e.target);
  out += ',';
  append_key(out, "reason");
  append_json_string(out, e.reason);
  out += ',';
  append_key(out, "detail");
  append_json_string(out, e.detail);
  out += ',';
  append_key(out, "uncertain");
  out += json_bool(e.uncertain);

  const JournalSession& s = e.session;
  out += ",\"session\":{";
  append_key(out, "id");
  append_json_string(out, s.id);
  out += ',';
  append_key(out, "user");
  append_json_string(out, s.user);
  out += ',';
  append_key(out, "database");
  append_json_string(out, s.database);
  out += ",\"params\":[";
  for (size_t i = 0; i < s.params.size(); ++i) {
    if (i > 0) out += ',';
    out += '[';
    append_json_string(out, s.params[i].first);
    out += ',';
    append_json_string(out, s.params[i].second);
    out += ']';
  }
  out += "],\"state\":[";
  for (size_t i = 0; i < s.state.size(); ++i) {
    if (i > 0) out += ',';
    append_base64_string(out, s.state[i]);
  }
  out += "],\"prepared\":[";
  for (size_t i = 0; i < s.prepared.size(); ++i) {
    if (i > 0) out += ',';
    out += '[';
    append_json_string(out, s.prepared[i].first);
    out += ',';
    append_base64_string(out, s.prepared[i].second);
    out += ']';
  }
  out += "]}";

  const policy::MirrorUnit& u = e.unit;
  out += ",\"unit\":{";
  append_key(out, "bytes");
  append_base64_string(out, u.bytes);
  out += ',';
  append_key(out, "responses");
  out += std::to_string(u.responses);
  out += ",\"primary\":[";
  for (size_t i = 0; i < u.primary.size(); ++i) {
    if (i > 0) out += ',';
    out += '[';
    append_json_string(out, u.primary[i].tag);
    out += ',';
    append_json_string(out, u.primary[i].sqlstate);
    out += ']';
  }
  out += "],\"binds\":[";
  for (size_t i = 0; i < u.binds.size(); ++i) {
    if (i > 0) out += ',';
    append_json_string(out, u.binds[i]);
  }
  out += "],";
  append_key(out, "session_state");
  out += json_bool(u.session_state);
  out += ',';
  append_key(out, "transaction");
  out += json_bool(u.transaction);
  out += ',';
  append_key(out, "nondeterministic");
  out += json_bool(u.nondeterministic);
  out += ',';
  append_key(out, "first_sql");
  append_json_string(out, u.first_sql);
  // Commit order (policy/mirror/mirror_order.h) within the writing process: catch-up applies a
  // process's entries by `order`, not by file position (issue 15).
  if (u.seq != 0) {
    out += ",\"order\":" + std::to_string(u.seq);
    out += ",\"after\":" + std::to_string(u.after);
  }
  out += "}}";
  return out;
}

std::string format_line(uint64_t seq, const std::string& ts, const std::string& body) {
  std::string line;
  line.reserve(body.size() + 64);
  line += "{\"seq\":";
  line += std::to_string(seq);
  line += ",\"ts\":";
  append_json_string(line, ts);
  line += body;
  return line;
}

// ------------------------------------------------------------------------------------------------
// Reader: a small strict JSON parser (objects, arrays, strings, non-negative integers, booleans,
// null) into a tree, then a typed mapping onto JournalEntry.

struct Json {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  uint64_t number = 0;
  std::string text;
  std::vector<std::string> keys;  // objects: keys[i] names items[i]
  std::vector<Json> items;        // array elements or object values

  const Json* get(std::string_view key) const {
    for (size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key) return &items[i];
    return nullptr;
  }
};

class Parser {
 public:
  explicit Parser(std::string_view in) : in_(in) {}

  bool parse_document(Json* out) {
    skip_ws();
    if (!parse_value(out, 0)) return false;
    skip_ws();
    if (pos_ != in_.size()) return fail("unexpected data after the JSON value");
    return true;
  }
  const std::string& error() const { return error_; }

 private:
  bool fail(const std::string& what) {
    if (error_.empty()) error_ = what + " at offset " + std::to_string(pos_);
    return false;
  }
  void skip_ws() {
    while (pos_ < in_.size() &&
           (in_[pos_] == ' ' || in_[pos_] == '\t' || in_[pos_] == '\n' || in_[pos_] == '\r'))
      ++pos_;
  }
  bool literal(std::string_view word) {
    if (in_.substr(pos_, word.size()) != word) return fail("invalid literal");
    pos_ += word.size();
    return true;
  }

  bool parse_value(Json* out, int depth) {
    if (depth > kMaxDepth) return fail("nesting too deep");
    if (pos_ >= in_.size()) return fail("unexpected end of line");
    char c = in_[pos_];
    switch (c) {
      case '{':
        return parse_object(out, depth);
      case '[':
        return parse_array(out, depth);
      case '"':
        out->kind = Json::Kind::kString;
        return parse_string(&out->text);
      case 't':
        out->kind = Json::Kind::kBool;
        out->boolean = true;
        return literal("true");
      case 'f':
        out->kind = Json::Kind::kBool;
        out->boolean = false;
        return literal("false");
      case 'n':
        out->kind = Json::Kind::kNull;
        return literal("null");
      default:
        if (c >= '0' && c <= '9') return parse_number(out);
        return fail("unexpected character");
    }
  }

  bool parse_number(Json* out) {
    out->kind = Json::Kind::kNumber;
    if (in_[pos_] == '0' && pos_ + 1 < in_.size() && in_[pos_ + 1] >= '0' && in_[pos_ + 1] <= '9')
      return fail("leading zero");
    uint64_t v = 0;
    while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') {
      uint64_t d = static_cast<uint64_t>(in_[pos_] - '0');
      if (v > (UINT64_MAX - d) / 10) return fail("number out of range");
      v = v * 10 + d;
      ++pos_;
    }
    if (pos_ < in_.size() && (in_[pos_] == '.' || in_[pos_] == 'e' || in_[pos_] == 'E'))
      return fail("only non-negative integers are expected");
    out->number = v;
    return true;
  }

  bool hex4(uint32_t* v) {
    if (in_.size() - pos_ < 4) return fail("truncated \\u escape");
    *v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = in_[pos_++];
      uint32_t d;
      if (c >= '0' && c <= '9')
        d = static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        d = static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        d = static_cast<uint32_t>(c - 'A' + 10);
      else
        return fail("invalid \\u escape");
      *v = (*v << 4) | d;
    }
    return true;
  }

  static void append_utf8(std::string* out, uint32_t cp) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  bool parse_string(std::string* out) {
    ++pos_;  // opening quote
    out->clear();
    for (;;) {
      size_t start = pos_;
      while (pos_ < in_.size() && in_[pos_] != '"' && in_[pos_] != '\\' &&
             static_cast<unsigned char>(in_[pos_]) >= 0x20)
        ++pos_;
      out->append(in_.data() + start, pos_ - start);
      if (pos_ >= in_.size()) return fail("unterminated string");
      char c = in_[pos_];
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c != '\\') return fail("control character in string");
      if (++pos_ >= in_.size()) return fail("unterminated string");
      char e = in_[pos_++];
      switch (e) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(&cp)) return false;
          if (cp >= 0xdc00 && cp <= 0xdfff) return fail("lone low surrogate");
          if (cp >= 0xd800 && cp <= 0xdbff) {
            uint32_t lo = 0;
            if (in_.substr(pos_, 2) != "\\u") return fail("lone high surrogate");
            pos_ += 2;
            if (!hex4(&lo)) return false;
            if (lo < 0xdc00 || lo > 0xdfff) return fail("invalid surrogate pair");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          append_utf8(out, cp);
          break;
        }
        default:
          return fail("invalid escape");
      }
    }
  }

  bool parse_array(Json* out, int depth) {
    out->kind = Json::Kind::kArray;
    ++pos_;
    skip_ws();
    if (pos_ < in_.size() && in_[pos_] == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_ws();
      out->items.emplace_back();
      if (!parse_value(&out->items.back(), depth + 1)) return false;
      skip_ws();
      if (pos_ >= in_.size()) return fail("unterminated array");
      if (in_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (in_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or ']'");
    }
  }

  bool parse_object(Json* out, int depth) {
    out->kind = Json::Kind::kObject;
    ++pos_;
    skip_ws();
    if (pos_ < in_.size() && in_[pos_] == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_ws();
      if (pos_ >= in_.size() || in_[pos_] != '"') return fail("expected a key");
      std::string key;
      if (!parse_string(&key)) return false;
      if (out->get(key) != nullptr) return fail("duplicate key \"" + key + "\"");
      skip_ws();
      if (pos_ >= in_.size() || in_[pos_] != ':') return fail("expected ':'");
      ++pos_;
      skip_ws();
      out->keys.push_back(std::move(key));
      out->items.emplace_back();
      if (!parse_value(&out->items.back(), depth + 1)) return false;
      skip_ws();
      if (pos_ >= in_.size()) return fail("unterminated object");
      if (in_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (in_[pos_] == '}') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or '}'");
    }
  }

  std::string_view in_;
  size_t pos_ = 0;
  std::string error_;
};

// Typed access. A missing optional field keeps its default; a field of the wrong type is an error.
class Mapper {
 public:
  explicit Mapper(std::string* error) : error_(error) {}

  bool fail(const std::string& what) {
    *error_ = what;
    return false;
  }

  const Json* field(const Json& obj, std::string_view key, Json::Kind kind, bool required,
                    const char* where) {
    const Json* v = obj.get(key);
    if (v == nullptr) {
      if (required) fail(std::string(where) + std::string(key) + " is missing");
      return nullptr;
    }
    if (v->kind != kind) {
      fail(std::string(where) + std::string(key) + " has the wrong type");
      return nullptr;
    }
    return v;
  }

  bool string(const Json& obj, std::string_view key, std::string* out, const char* where,
              bool required = false) {
    const Json* v = field(obj, key, Json::Kind::kString, required, where);
    if (v == nullptr) return error_->empty();
    *out = v->text;
    return true;
  }
  bool boolean(const Json& obj, std::string_view key, bool* out, const char* where) {
    const Json* v = field(obj, key, Json::Kind::kBool, false, where);
    if (v == nullptr) return error_->empty();
    *out = v->boolean;
    return true;
  }
  bool base64(const Json& v, std::string* out, const std::string& what) {
    if (v.kind != Json::Kind::kString) return fail(what + " is not a string");
    auto decoded = protocol::base64_decode(v.text);
    if (!decoded) return fail(what + " is not valid base64");
    *out = std::move(*decoded);
    return true;
  }
  // [[a, b], ...] of strings; b decoded from base64 when `b_base64`.
  bool pairs(const Json& obj, std::string_view key, bool b_base64,
             std::vector<std::pair<std::string, std::string>>* out, const char* where) {
    const Json* v = field(obj, key, Json::Kind::kArray, false, where);
    if (v == nullptr) return error_->empty();
    out->clear();
    for (const Json& item : v->items) {
      std::string name =
          std::string(where) + std::string(key) + "[" + std::to_string(out->size()) + "]";
      if (item.kind != Json::Kind::kArray || item.items.size() != 2 ||
          item.items[0].kind != Json::Kind::kString || item.items[1].kind != Json::Kind::kString)
        return fail(name + " is not a pair of strings");
      std::string second;
      if (b_base64) {
        if (!base64(item.items[1], &second, name)) return false;
      } else {
        second = item.items[1].text;
      }
      out->emplace_back(item.items[0].text, std::move(second));
    }
    return true;
  }

 private:
  std::string* error_;
};

bool map_entry(const Json& root, JournalEntry* out, std::string* error) {
  error->clear();
  Mapper m(error);
  if (root.kind != Json::Kind::kObject) return m.fail("not a JSON object");
  JournalEntry e;
  const Json* seq = m.field(root, "seq", Json::Kind::kNumber, true, "");
  if (seq == nullptr) return false;
  e.seq = seq->number;
  std::string ts;
  if (!m.string(root, "ts", &ts, "") || !m.string(root, "target", &e.target, "", true) ||
      !m.string(root, "reason", &e.reason, "") || !m.string(root, "detail", &e.detail, "") ||
      !m.boolean(root, "uncertain", &e.uncertain, ""))
    return false;

  if (const Json* s = m.field(root, "session", Json::Kind::kObject, false, "")) {
    if (!m.string(*s, "id", &e.session.id, "session.") ||
        !m.string(*s, "user", &e.session.user, "session.") ||
        !m.string(*s, "database", &e.session.database, "session.") ||
        !m.pairs(*s, "params", false, &e.session.params, "session.") ||
        !m.pairs(*s, "prepared", true, &e.session.prepared, "session."))
      return false;
    if (const Json* st = m.field(*s, "state", Json::Kind::kArray, false, "session.")) {
      for (const Json& item : st->items) {
        std::string bytes;
        if (!m.base64(item, &bytes,
                      "session.state[" + std::to_string(e.session.state.size()) + "]"))
          return false;
        e.session.state.push_back(std::move(bytes));
      }
    } else if (!error->empty()) {
      return false;
    }
  } else if (!error->empty()) {
    return false;
  }

  const Json* u = m.field(root, "unit", Json::Kind::kObject, true, "");
  if (u == nullptr) return false;
  const Json* bytes = m.field(*u, "bytes", Json::Kind::kString, true, "unit.");
  if (bytes == nullptr || !m.base64(*bytes, &e.unit.bytes, "unit.bytes")) return false;
  const Json* responses = m.field(*u, "responses", Json::Kind::kNumber, true, "unit.");
  if (responses == nullptr) return false;
  if (responses->number > UINT32_MAX) return m.fail("unit.responses is out of range");
  e.unit.responses = static_cast<uint32_t>(responses->number);
  if (const Json* p = m.field(*u, "primary", Json::Kind::kArray, false, "unit.")) {
    for (const Json& item : p->items) {
      if (item.kind != Json::Kind::kArray || item.items.size() != 2 ||
          item.items[0].kind != Json::Kind::kString || item.items[1].kind != Json::Kind::kString)
        return m.fail("unit.primary[" + std::to_string(e.unit.primary.size()) +
                      "] is not a [tag, sqlstate] pair");
      e.unit.primary.push_back(policy::Outcome{item.items[0].text, item.items[1].text});
    }
  } else if (!error->empty()) {
    return false;
  }
  if (const Json* b = m.field(*u, "binds", Json::Kind::kArray, false, "unit.")) {
    for (const Json& item : b->items) {
      if (item.kind != Json::Kind::kString) return m.fail("unit.binds has a non-string element");
      e.unit.binds.push_back(item.text);
    }
  } else if (!error->empty()) {
    return false;
  }
  if (!m.boolean(*u, "session_state", &e.unit.session_state, "unit.") ||
      !m.boolean(*u, "transaction", &e.unit.transaction, "unit.") ||
      !m.boolean(*u, "nondeterministic", &e.unit.nondeterministic, "unit.") ||
      !m.string(*u, "first_sql", &e.unit.first_sql, "unit."))
    return false;
  if (const Json* o = m.field(*u, "order", Json::Kind::kNumber, false, "unit.")) {
    e.unit.seq = o->number;
  } else if (!error->empty()) {
    return false;
  }
  if (const Json* a = m.field(*u, "after", Json::Kind::kNumber, false, "unit.")) {
    e.unit.after = a->number;
  } else if (!error->empty()) {
    return false;
  }
  *out = std::move(e);
  return true;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Public parse/format

bool parse_journal_line(const std::string& line, JournalEntry* out, std::string* error) {
  Json root;
  Parser parser(line);
  if (!parser.parse_document(&root)) {
    *error = parser.error();
    return false;
  }
  return map_entry(root, out, error);
}

std::string format_journal_line(const JournalEntry& entry) {
  return format_line(entry.seq, utc_timestamp_now(), format_body(entry));
}

std::string journal_entry_body(const JournalEntry& entry) { return format_body(entry); }

std::string journal_line(uint64_t seq, const std::string& body) {
  return format_line(seq, utc_timestamp_now(), body);
}

}  // namespace pgtandem::proxy
