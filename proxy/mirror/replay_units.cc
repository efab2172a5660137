// What the replay engine reads in a unit's frontend messages (replay_units.h).
#include "proxy/mirror/replay_units.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>

#include "protocol/backend.h"
#include "protocol/framing.h"
#include "protocol/messages.h"
#include "protocol/wire.h"

namespace pgtandem::proxy::replay_detail {

using policy::Outcome;

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


Wrap wrap_for(const policy::MirrorUnit& u) {
  if (u.primary.empty()) return Wrap::kRecordAfter;
  const auto name = [](const Outcome& o) { return protocol::command_tag_name(o.tag); };
  const std::string_view first = name(u.primary.front());
  const std::string_view last = name(u.primary.back());
  if ((first == "BEGIN" || first == "START TRANSACTION") && last == "COMMIT") {
    for (size_t i = 1; i + 1 < u.primary.size(); ++i) {
      const std::string_view n = name(u.primary[i]);
      if (n == "COMMIT" || n == "ROLLBACK" || n == "BEGIN" || n == "PREPARE TRANSACTION" ||
          n == "START TRANSACTION")
        return Wrap::kRecordAfter;
    }
    return Wrap::kTransaction;
  }
  if (u.transaction || u.session_state) return Wrap::kRecordAfter;
  for (const auto& o : u.primary) {
    if (o.is_error()) return Wrap::kRecordAfter;
    const std::string_view n = name(o);
    if (n != "INSERT" && n != "UPDATE" && n != "DELETE" && n != "MERGE" && n != "SELECT" &&
        n != "COPY")
      return Wrap::kRecordAfter;
  }
  return Wrap::kAutocommit;
}

// The record of an applied entry, which refuses an entry the target already recorded. A
// connection dropped with its request still running (a unit timeout, a SIGKILLed pgtandem)
// leaves a backend that may commit that entry after the next connection read the records; the
// next connection's record of the same entry waits for that backend's row lock, then finds
// seq >= its own and fails with kAlreadyRecorded, so its transaction (the entry) rolls back
// instead of applying the entry a second time. The error is an input-syntax one of a value only
// this statement builds ('<seq> already applied'); evaluated only in that branch (a Var in it,
// so the planner never folds it).
bool already_recorded(const std::vector<Outcome>& record_answers) {
  for (const auto& o : record_answers)
    if (o.sqlstate == kAlreadyRecorded) return true;
  return false;
}

bool any_error(const std::vector<Outcome>& outcomes) {
  for (const auto& o : outcomes)
    if (o.is_error()) return true;
  return false;
}

std::string record_sql(const std::string& session, const std::string& seq) {
  return std::string("INSERT INTO ") + kMarkerTable + " AS m (session, seq) VALUES (" + session +
         ", " + seq +
         ") ON CONFLICT (session) DO UPDATE SET seq = CASE WHEN m.seq < EXCLUDED.seq THEN "
         "EXCLUDED.seq ELSE (EXCLUDED.seq::text || ' already applied')::bigint END, "
         "applied_at = now()";
}

// The unit's messages from `from` on without their Syncs, when every one is an extended-query
// message (Parse, Bind, Describe, Execute, Close, Flush, Sync): the whole entry then runs up to
// one Sync, one ReadyForQuery and one flush on the target instead of one per statement (the
// target's CPU per entry halves: docs/design.md, "Catch-up"). False for anything else (a simple
// Query, COPY, a function call): such a unit keeps its requests as they are.
bool without_syncs(std::string_view bytes, size_t from, std::string* out) {
  size_t pos = from;
  const size_t start = out->size();
  while (pos + protocol::kHeaderSize <= bytes.size()) {
    const char type = bytes[pos];
    const size_t end = pos + 1 + protocol::read_u32(bytes.data() + pos + 1);
    if (end > bytes.size()) break;
    switch (type) {
      case protocol::frontend::kParse:
      case protocol::frontend::kBind:
      case protocol::frontend::kDescribe:
      case protocol::frontend::kExecute:
      case protocol::frontend::kClose:
      case protocol::frontend::kFlush:
        out->append(bytes, pos, end - pos);
        break;
      case protocol::frontend::kSync:
        break;
      default:
        out->resize(start);
        return false;
    }
    pos = end;
  }
  if (pos != bytes.size()) {
    out->resize(start);
    return false;
  }
  return true;
}

// The unit's first request when it is only its BEGIN (one statement: a Query without another
// statement, or one Execute up to the Sync, preparing nothing): its length, else 0. The wrap's
// own `BEGIN; <record>` then replaces it, instead of preceding it (a second BEGIN would only warn,
// once per entry in the target's log).
size_t leading_begin(std::string_view bytes) {
  size_t pos = 0;
  int executes = 0;
  while (pos + protocol::kHeaderSize <= bytes.size()) {
    const char type = bytes[pos];
    const size_t end = pos + 1 + protocol::read_u32(bytes.data() + pos + 1);
    if (end > bytes.size()) return 0;
    if (type == protocol::frontend::kQuery) {
      if (pos != 0) return 0;
      protocol::Query q;
      if (!protocol::decode(bytes.substr(pos + protocol::kHeaderSize, end - pos - protocol::kHeaderSize), q))
        return 0;
      std::string_view sql = q.sql;
      while (!sql.empty() && (sql.back() == ';' || std::isspace(static_cast<unsigned char>(sql.back()))))
        sql.remove_suffix(1);
      return sql.find(';') == std::string_view::npos ? end : 0;
    }
    if (type == protocol::frontend::kParse || type == protocol::frontend::kClose) return 0;
    if (type == protocol::frontend::kExecute) ++executes;
    if (type == protocol::frontend::kSync) return executes == 1 ? end : 0;
    pos = end;
  }
  return 0;
}

// Where the unit's last request starts when it is only its COMMIT (one Execute up to the final
// Sync, preparing and closing nothing), else npos. With leading_begin, what a BEGIN..COMMIT unit
// runs inside its transaction: a grouped entry drops both (the group has its own).
size_t trailing_commit(std::string_view bytes) {
  size_t pos = 0;
  size_t request_start = 0;
  size_t last_start = std::string_view::npos;
  int executes = 0;
  bool plain = true;
  while (pos + protocol::kHeaderSize <= bytes.size()) {
    const char type = bytes[pos];
    const size_t end = pos + 1 + protocol::read_u32(bytes.data() + pos + 1);
    if (end > bytes.size()) return std::string_view::npos;
    if (type == protocol::frontend::kParse || type == protocol::frontend::kClose) plain = false;
    if (type == protocol::frontend::kExecute) ++executes;
    if (type == protocol::frontend::kSync) {
      last_start = (plain && executes == 1 && end == bytes.size()) ? request_start
                                                                    : std::string_view::npos;
      request_start = end;
      executes = 0;
      plain = true;
    }
    pos = end;
  }
  return pos == bytes.size() ? last_start : std::string_view::npos;
}


}  // namespace pgtandem::proxy::replay_detail
