// What the replay engine reads in a unit's frontend messages (replay_units.h).
#include "proxy/mirror/replay_units.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>

#include "protocol/framing.h"
#include "protocol/messages.h"

namespace pgtandem::proxy::replay_detail {

bool contains_word_ci(std::string_view text, std::string_view word) {
  if (text.size() < word.size()) return false;
  for (size_t i = 0; i + word.size() <= text.size(); ++i) {
    size_t k = 0;
    while (k < word.size() && std::tolower(static_cast<unsigned char>(text[i + k])) == word[k]) ++k;
    if (k == word.size()) return true;
  }
  return false;
}

bool scan_unit(std::string_view bytes, UnitScan* out, std::string* error) {
  using protocol::Direction;
  using protocol::Status;
  *out = UnitScan{};
  if (bytes.empty()) {
    *error = "no messages";
    return false;
  }
  std::set<std::string> seen;
  size_t pos = 0;
  while (pos < bytes.size()) {
    auto h = protocol::decode_header(bytes.substr(pos), Direction::kFrontend, protocol::Limits{});
    if (h.status == Status::kInvalid) {
      *error = "invalid message at offset " + std::to_string(pos);
      return false;
    }
    if (h.status == Status::kNeedMore || bytes.size() - pos < h.header.frame_size()) {
      *error = "truncated message at offset " + std::to_string(pos);
      return false;
    }
    std::string_view body = bytes.substr(pos + protocol::kHeaderSize, h.header.body_size());
    bool ok = true;
    const char type = h.header.type;
    if (type != protocol::frontend::kParse && type != protocol::frontend::kClose &&
        type != protocol::frontend::kDescribe && type != protocol::frontend::kSync &&
        type != protocol::frontend::kFlush)
      out->only_prepares = false;
    switch (type) {
      case protocol::frontend::kQuery: {
        protocol::Query q;
        ok = protocol::decode(body, q);
        ++out->requests;
        if (ok && (contains_word_ci(q.sql, "deallocate") || contains_word_ci(q.sql, "discard")))
          out->may_deallocate = true;
        break;
      }
      case protocol::frontend::kSync:
        ++out->requests;
        break;
      case protocol::frontend::kParse: {
        protocol::Parse p;
        ok = protocol::decode(body, p);
        if (ok && !p.name.empty()) {
          std::string name(p.name);
          if (seen.insert(name).second) out->parses_first.push_back(name);
          out->touched.push_back(std::move(name));
        }
        break;
      }
      case protocol::frontend::kClose: {
        protocol::Close c;
        ok = protocol::decode(body, c);
        if (ok && c.target == protocol::kTargetStatement && !c.name.empty()) {
          seen.emplace(c.name);
          out->touched.emplace_back(c.name);
        }
        break;
      }
      case protocol::frontend::kBind: {
        protocol::Bind b;
        ok = protocol::decode(body, b);
        if (ok && !b.statement.empty() && seen.emplace(b.statement).second)
          out->needs.emplace_back(b.statement);
        break;
      }
      case protocol::frontend::kDescribe: {
        protocol::Describe d;
        ok = protocol::decode(body, d);
        if (ok && d.target == protocol::kTargetStatement && !d.name.empty() &&
            seen.emplace(d.name).second)
          out->needs.emplace_back(d.name);
        break;
      }
      case protocol::frontend::kTerminate:
      case protocol::frontend::kPassword:
        *error = std::string("unexpected ") +
                 std::string(protocol::message_name(Direction::kFrontend, h.header.type)) +
                 " message";
        return false;
      default:
        break;
    }
    if (!ok) {
      *error = "malformed " +
               std::string(protocol::message_name(Direction::kFrontend, h.header.type)) +
               " message at offset " + std::to_string(pos);
      return false;
    }
    pos += h.header.frame_size();
  }
  return true;
}

// The stored Parse of a named statement must be exactly one Parse message of that name.
bool check_prepared(const std::string& name, std::string_view bytes, std::string* error) {
  auto h = protocol::decode_header(bytes, protocol::Direction::kFrontend, protocol::Limits{});
  protocol::Parse p;
  if (h.status != protocol::Status::kComplete || h.header.type != protocol::frontend::kParse ||
      h.header.frame_size() != bytes.size() ||
      !protocol::decode(bytes.substr(protocol::kHeaderSize), p) || p.name != name) {
    *error = "prepared statement \"" + name + "\" is not a single Parse message of that name";
    return false;
  }
  return true;
}

}  // namespace pgtandem::proxy::replay_detail
