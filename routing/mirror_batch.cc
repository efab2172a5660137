#include "routing/mirror_batch.h"

#include <algorithm>
#include <cctype>
#include <string_view>

#include "protocol/framing.h"
#include "protocol/message_types.h"
#include "protocol/messages.h"

namespace pgtandem::routing {

namespace fe = protocol::frontend;

namespace {

bool starts_transaction(const Outcome& o) {
  return o.tag == "BEGIN" || o.tag == "START TRANSACTION";
}

// Tags that end or split a transaction block: only the last outcome may be one (COMMIT).
bool ends_transaction(const Outcome& o) {
  return o.tag == "COMMIT" || o.tag == "ROLLBACK" || o.tag == "PREPARE TRANSACTION" ||
         o.tag == "COMMIT PREPARED" || o.tag == "ROLLBACK PREPARED" || starts_transaction(o);
}

bool contains_nocase(std::string_view text, std::string_view needle) {
  return std::search(text.begin(), text.end(), needle.begin(), needle.end(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         }) != text.end();
}

}  // namespace

bool coalesce_transaction(const MirrorUnit& unit, std::string& out) {
  const auto& p = unit.primary;
  if (unit.responses < 2 || p.size() < 2) return false;
  if (!starts_transaction(p.front()) || p.back().tag != "COMMIT") return false;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i].is_error()) return false;
    if (i > 0 && i + 1 < p.size() && ends_transaction(p[i])) return false;
  }

  // One pass to check the messages: all simple Queries, or all extended-protocol messages ending
  // with a Sync.
  const std::string_view bytes = unit.bytes;
  bool simple = false;
  bool extended = false;
  char last = 0;
  size_t sql_bytes = 0;
  for (size_t pos = 0; pos < bytes.size();) {
    if (bytes.size() - pos < protocol::kHeaderSize) return false;
    const uint32_t length = protocol::read_u32(bytes.data() + pos + 1);
    if (length < 4 || length > bytes.size() - pos - 1) return false;
    last = bytes[pos];
    switch (last) {
      case fe::kQuery: {
        simple = true;
        // The body is the text and its terminating NUL; a NUL inside would end the text early.
        const std::string_view sql = bytes.substr(pos + protocol::kHeaderSize, length - 4);
        if (sql.empty() || sql.back() != '\0' || sql.find('\0') != sql.size() - 1) return false;
        if (contains_nocase(sql, "standard_conforming") || contains_nocase(sql, "backslash_quote")) {
          return false;
        }
        sql_bytes += sql.size() - 1;
        break;
      }
      case fe::kParse:
      case fe::kBind:
      case fe::kDescribe:
      case fe::kExecute:
      case fe::kClose:
      case fe::kFlush:
      case fe::kSync:
        extended = true;
        break;
      default:
        return false;  // COPY data, fast-path calls: as they are
    }
    pos += 1 + length;
  }
  if (simple == extended) return false;

  out.clear();
  if (simple) {
    out.reserve(protocol::kHeaderSize + sql_bytes + 2 * unit.responses + 1);
    const size_t start = protocol::begin_message(out, fe::kQuery);
    for (size_t pos = 0; pos < bytes.size();) {
      const uint32_t length = protocol::read_u32(bytes.data() + pos + 1);
      out.append(bytes.substr(pos + protocol::kHeaderSize, length - 5));  // the text, no NUL
      out.append("\n;");
      pos += 1 + length;
    }
    out.push_back('\0');
    protocol::end_message(out, start);
    return true;
  }
  if (last != fe::kSync) return false;
  out.reserve(bytes.size());
  for (size_t pos = 0; pos < bytes.size();) {
    const uint32_t length = protocol::read_u32(bytes.data() + pos + 1);
    const bool final_message = pos + 1 + length == bytes.size();
    if (bytes[pos] != fe::kSync || final_message) out.append(bytes.substr(pos, 1 + length));
    pos += 1 + length;
  }
  return true;
}

}  // namespace pgtandem::routing
