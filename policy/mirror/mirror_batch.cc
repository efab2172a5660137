#include "policy/mirror/mirror_batch.h"

#include <cctype>
#include <string_view>

#include "protocol/framing.h"
#include "protocol/message_types.h"
#include "protocol/messages.h"

namespace pgtandem::policy {

namespace fe = protocol::frontend;

namespace {

bool starts_transaction(const Outcome& o) {
  return o.tag == "BEGIN" || o.tag == "START TRANSACTION";
}

// Tags that end or split a transaction block: only the last outcome may be one (COMMIT). Checked
// for every statement of every mirrored transaction: the first letter rules out the usual
// UPDATE / INSERT / SELECT / DELETE before any comparison.
bool ends_transaction(const Outcome& o) {
  if (o.tag.empty()) return false;
  switch (o.tag[0]) {
    case 'B':
    case 'C':
    case 'P':
    case 'R':
    case 'S':
      break;
    default:
      return false;
  }
  return o.tag == "COMMIT" || o.tag == "ROLLBACK" || o.tag == "PREPARE TRANSACTION" ||
         o.tag == "COMMIT PREPARED" || o.tag == "ROLLBACK PREPARED" || starts_transaction(o);
}

bool equals_nocase(std::string_view text, std::string_view lower) {
  if (text.size() != lower.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(text[i])) != lower[i]) return false;
  }
  return true;
}

// Whether the text names a setting that changes how the rest of a multi-statement Query is lexed
// (standard_conforming_strings, backslash_quote), in any case. Anchored on the underscores (found
// with memchr): a statement has few, and most have none.
bool names_lexing_setting(std::string_view sql) {
  for (size_t at = sql.find('_'); at != std::string_view::npos; at = sql.find('_', at + 1)) {
    if (at >= 8 && equals_nocase(sql.substr(at - 8, 19), "standard_conforming")) return true;
    if (at >= 9 && equals_nocase(sql.substr(at - 9, 15), "backslash_quote")) return true;
  }
  return false;
}

// Which protocol the unit's messages speak, if it can be sent as part of a batch at all.
TransactionBatch::Kind joinable(const MirrorUnit& unit) {
  using Kind = TransactionBatch::Kind;
  const auto& p = unit.primary;
  if (unit.responses < 1 || p.size() < 2) return Kind::kEmpty;
  if (!starts_transaction(p.front()) || p.back().tag != "COMMIT") return Kind::kEmpty;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i].is_error()) return Kind::kEmpty;
    if (i > 0 && i + 1 < p.size() && ends_transaction(p[i])) return Kind::kEmpty;
  }
  // All simple Queries, or all extended-protocol messages ending with a Sync.
  const std::string_view bytes = unit.bytes;
  bool simple = false;
  bool extended = false;
  char last = 0;
  for (size_t pos = 0; pos < bytes.size();) {
    if (bytes.size() - pos < protocol::kHeaderSize) return Kind::kEmpty;
    const uint32_t length = protocol::read_u32(bytes.data() + pos + 1);
    if (length < 4 || length > bytes.size() - pos - 1) return Kind::kEmpty;
    last = bytes[pos];
    switch (last) {
      case fe::kQuery: {
        simple = true;
        // The body is the text and its terminating NUL; a NUL inside would end the text early.
        const std::string_view sql = bytes.substr(pos + protocol::kHeaderSize, length - 4);
        if (sql.empty() || sql.back() != '\0' || sql.find('\0') != sql.size() - 1) {
          return Kind::kEmpty;
        }
        if (names_lexing_setting(sql)) return Kind::kEmpty;
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
        return Kind::kEmpty;  // COPY data, fast-path calls: as they are
    }
    pos += 1 + length;
  }
  if (simple == extended) return Kind::kEmpty;
  if (extended && last != fe::kSync) return Kind::kEmpty;
  return simple ? Kind::kSimple : Kind::kExtended;
}

}  // namespace

bool TransactionBatch::add(const MirrorUnit& unit) {
  const Kind kind = joinable(unit);
  if (kind == Kind::kEmpty || (kind_ != Kind::kEmpty && kind != kind_)) return false;
  unseal();
  if (kind_ == Kind::kEmpty && kind == Kind::kSimple) body_.append(protocol::kHeaderSize, '\0');
  kind_ = kind;
  ++units_;
  const std::string_view bytes = unit.bytes;
  // Extended: the messages between Syncs are copied a run at a time, not one by one.
  size_t run = 0;
  for (size_t pos = 0; pos < bytes.size();) {
    const uint32_t length = protocol::read_u32(bytes.data() + pos + 1);
    if (kind == Kind::kSimple) {
      body_.append(bytes.substr(pos + protocol::kHeaderSize, length - 5));  // the text, no NUL
      body_.append("\n;");
    } else if (bytes[pos] == fe::kSync) {
      body_.append(bytes.substr(run, pos - run));
      run = pos + 1 + length;
    }
    pos += 1 + length;
  }
  if (kind == Kind::kExtended) body_.append(bytes.substr(run));  // (empty: it ends with a Sync)
  return true;
}

// The request is built in place: body_ already starts with the Query's header (simple), and the
// end (its NUL, or the one Sync) is appended here and taken off again by the next add().
const std::string& TransactionBatch::request() {
  if (sealed_ > 0) return body_;  // asked again: already whole
  if (kind_ == Kind::kSimple) {
    body_.push_back('\0');
    sealed_ = 1;
    body_[0] = fe::kQuery;
    protocol::end_message(body_, 0);
  } else if (kind_ == Kind::kExtended) {
    protocol::encode(body_, protocol::Sync{});
    sealed_ = protocol::kHeaderSize;
  }
  return body_;  // empty for an empty batch
}

void TransactionBatch::unseal() {
  body_.resize(body_.size() - sealed_);
  sealed_ = 0;
}

void TransactionBatch::clear() {
  kind_ = Kind::kEmpty;
  units_ = 0;
  body_.clear();
  sealed_ = 0;
}

}  // namespace pgtandem::policy
