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

// Whether the primary's answers allow joining: a whole BEGIN .. COMMIT, every statement a success,
// nothing ending the transaction block in between.
bool joinable_outcomes(const MirrorUnit& unit) {
  const auto& p = unit.primary;
  if (unit.responses < 1 || p.size() < 2) return false;
  if (!starts_transaction(p.front()) || p.back().tag != "COMMIT") return false;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i].is_error()) return false;
    if (i > 0 && i + 1 < p.size() && ends_transaction(p[i])) return false;
  }
  return true;
}

}  // namespace

// One pass over the unit's messages checks that they can join (all simple Queries, or all
// extended-protocol messages ending with a Sync) and appends them; what a unit that turns out not
// to fit appended is taken off again.
bool TransactionBatch::add(const MirrorUnit& unit) {
  if (!joinable_outcomes(unit)) return false;
  unseal();
  if (add_synced(unit)) return true;
  const size_t before = body_.size();
  const Kind kind_before = kind_;
  auto refuse = [&] {
    body_.resize(before);
    kind_ = kind_before;
    return false;
  };
  const std::string_view bytes = unit.bytes;
  Kind kind = Kind::kEmpty;
  char last = 0;
  size_t run = 0;  // extended: the messages between Syncs are copied a run at a time
  for (size_t pos = 0; pos < bytes.size();) {
    if (bytes.size() - pos < protocol::kHeaderSize) return refuse();
    const uint32_t length = protocol::read_u32(bytes.data() + pos + 1);
    if (length < 4 || length > bytes.size() - pos - 1) return refuse();
    last = bytes[pos];
    Kind here = Kind::kExtended;
    switch (last) {
      case fe::kQuery:
        here = Kind::kSimple;
        break;
      case fe::kParse:
      case fe::kBind:
      case fe::kDescribe:
      case fe::kExecute:
      case fe::kClose:
      case fe::kFlush:
      case fe::kSync:
        break;
      default:
        return refuse();  // COPY data, fast-path calls: as they are
    }
    if (kind == Kind::kEmpty) {
      kind = here;
      if (kind_ != Kind::kEmpty && kind != kind_) return refuse();
      if (kind_ == Kind::kEmpty && kind == Kind::kSimple) body_.append(protocol::kHeaderSize, '\0');
      kind_ = kind;
    } else if (here != kind) {
      return refuse();  // a mix of simple and extended messages
    }
    if (kind == Kind::kSimple) {
      // The body is the text and its terminating NUL; a NUL inside would end the text early.
      const std::string_view sql = bytes.substr(pos + protocol::kHeaderSize, length - 4);
      if (sql.empty() || sql.back() != '\0' || sql.find('\0') != sql.size() - 1) return refuse();
      if (names_lexing_setting(sql)) return refuse();
      body_.append(sql.substr(0, sql.size() - 1));  // the text, no NUL
      body_.append("\n;");
    } else if (last == fe::kSync) {
      body_.append(bytes.substr(run, pos - run));
      run = pos + 1 + length;
    }
    pos += 1 + length;
  }
  if (kind == Kind::kEmpty) return refuse();
  if (kind == Kind::kExtended && last != fe::kSync) return refuse();
  ++units_;
  return true;
}

// A unit whose request ends the capture recorded (MirrorUnit::sync_ends): every request is
// extended-protocol messages ended by its one Sync, so the runs between the Syncs are copied
// without reading the messages again. False, and the batch unchanged, when the unit has no such
// record, or the batch holds simple Queries, or a recorded end is not a Sync after all.
bool TransactionBatch::add_synced(const MirrorUnit& unit) {
  const std::string_view bytes = unit.bytes;
  const auto& ends = unit.sync_ends;
  if (ends.empty() || ends.size() != unit.responses || ends.back() != bytes.size() ||
      kind_ == Kind::kSimple) {
    return false;
  }
  const size_t before = body_.size();
  size_t begin = 0;
  for (const uint32_t end : ends) {
    // The request ends with its Sync ('S', length 4): checked inline, a call to compare five
    // bytes cost more than the check.
    const char* sync = end < begin + protocol::kHeaderSize
                           ? nullptr
                           : bytes.data() + end - protocol::kHeaderSize;
    if (sync == nullptr || sync[0] != fe::kSync || protocol::read_u32(sync + 1) != 4) {
      body_.resize(before);
      return false;
    }
    body_.append(bytes.data() + begin, end - protocol::kHeaderSize - begin);
    begin = end;
  }
  kind_ = Kind::kExtended;
  ++units_;
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
