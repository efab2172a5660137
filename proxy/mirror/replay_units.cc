// What the replay engine reads in a journal entry (replay_units.h).
#include "proxy/mirror/replay_units.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <set>

#include "protocol/framing.h"
#include "protocol/messages.h"

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


// The text of a statement a request runs: a Query's SQL, or for Bind .. Execute the Parse of the
// statement it binds (an unnamed one parsed in the same request, else the journaled Parse).
bool statement_text(const JournalEntry& e, std::string_view bytes, size_t from, size_t to,
                    std::string* sql) {
  size_t pos = from;
  int executes = 0;
  std::string bound;
  bool have_bind = false;
  std::string unnamed_parse;
  bool have_unnamed = false;
  while (pos < to) {
    const char type = bytes[pos];
    const size_t end = pos + 1 + protocol::read_u32(bytes.data() + pos + 1);
    std::string_view body = bytes.substr(pos + protocol::kHeaderSize, end - pos - protocol::kHeaderSize);
    switch (type) {
      case protocol::frontend::kQuery: {
        protocol::Query q;
        if (pos != from || end != to || !protocol::decode(body, q)) return false;
        *sql = q.sql;
        return true;
      }
      case protocol::frontend::kParse: {
        protocol::Parse p;
        if (!protocol::decode(body, p) || !p.name.empty()) return false;
        unnamed_parse = p.query;
        have_unnamed = true;
        break;
      }
      case protocol::frontend::kBind: {
        protocol::Bind b;
        if (have_bind || !protocol::decode(body, b)) return false;
        bound = b.statement;
        have_bind = true;
        break;
      }
      case protocol::frontend::kExecute:
        ++executes;
        break;
      case protocol::frontend::kDescribe:
      case protocol::frontend::kSync:
      case protocol::frontend::kFlush:
        break;
      default:
        return false;
    }
    pos = end;
  }
  if (executes != 1 || !have_bind) return false;
  if (bound.empty()) {
    if (!have_unnamed) return false;
    *sql = unnamed_parse;
    return true;
  }
  if (have_unnamed) return false;
  for (const auto& [name, parse] : e.session.prepared) {
    if (name != bound) continue;
    protocol::Parse p;
    if (!protocol::decode(std::string_view(parse).substr(protocol::kHeaderSize), p)) return false;
    *sql = p.query;
    return true;
  }
  return false;
}

// "COMMIT", "END", "COMMIT WORK", "end transaction;" ...: a plain commit (not AND CHAIN, not
// PREPARE TRANSACTION), one statement.
bool is_plain_commit(std::string_view sql) {
  std::vector<std::string> words;
  std::string word;
  for (char ch : sql) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalpha(c)) {
      word += static_cast<char>(std::tolower(c));
    } else if (std::isspace(c) || ch == ';') {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
      if (ch == ';' && !words.empty()) words.emplace_back(";");
    } else {
      return false;
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  while (!words.empty() && words.back() == ";") words.pop_back();
  if (words.empty() || (words[0] != "commit" && words[0] != "end")) return false;
  if (words.size() == 1) return true;
  return words.size() == 2 && (words[1] == "work" || words[1] == "transaction");
}

// A BEGIN..COMMIT unit pipelined as two requests (JournalApplier::Impl::plan_batch): the wrap's
// BEGIN and record, then the unit's statements with their Syncs dropped, ended by one Sync; and
// the engine's own COMMIT as a simple Query. `middle` gets the statements' messages. Only when
// the unit is [a lone BEGIN request][extended-query messages][a lone plain COMMIT request]: the
// statements then run in the same transaction, in the same order, as on the primary (a Sync
// inside a transaction block only answers and flushes), and whatever fails, the COMMIT request
// ends the block (COMMIT of a failed block rolls it back), so the next entry starts idle.
bool shape_transaction(const JournalEntry& e, std::string* middle) {
  const std::string_view bytes = e.unit.bytes;
  const size_t begin_end = leading_begin(bytes);
  if (begin_end == 0) return false;
  for (const auto& o : e.unit.primary)
    if (o.is_error()) return false;
  // The messages after the BEGIN request; the last request's start.
  std::vector<std::pair<size_t, size_t>> msgs;
  size_t pos = begin_end;
  size_t last_request = begin_end;
  while (pos + protocol::kHeaderSize <= bytes.size()) {
    const size_t end = pos + 1 + protocol::read_u32(bytes.data() + pos + 1);
    if (end > bytes.size() || end < pos + protocol::kHeaderSize) return false;
    msgs.emplace_back(pos, end);
    pos = end;
  }
  if (pos != bytes.size() || msgs.empty()) return false;
  // The COMMIT request: the last Query, or the messages after the Sync before the last one.
  const char last_type = bytes[msgs.back().first];
  if (last_type == protocol::frontend::kQuery) {
    last_request = msgs.back().first;
  } else if (last_type == protocol::frontend::kSync) {
    last_request = begin_end;
    for (size_t k = msgs.size() - 1; k-- > 0;) {
      const char t = bytes[msgs[k].first];
      if (t == protocol::frontend::kSync || t == protocol::frontend::kQuery) {
        last_request = msgs[k].second;
        break;
      }
    }
  } else {
    return false;
  }
  std::string sql;
  if (!statement_text(e, bytes, last_request, bytes.size(), &sql) || !is_plain_commit(sql))
    return false;
  middle->clear();
  for (const auto& [from, to] : msgs) {
    if (from >= last_request) break;
    switch (bytes[from]) {
      case protocol::frontend::kParse:
      case protocol::frontend::kBind:
      case protocol::frontend::kDescribe:
      case protocol::frontend::kExecute:
      case protocol::frontend::kClose:
        middle->append(bytes.substr(from, to - from));
        break;
      case protocol::frontend::kSync:
      case protocol::frontend::kFlush:
        break;  // one Sync ends the whole request
      default:
        return false;  // a Query (or COPY data, a function call): its own request, kept as it is
    }
  }
  return true;
}

// A plain DML autocommit unit of extended-query messages only: its messages without Sync/Flush.
bool shape_autocommit(const JournalEntry& e, std::string* middle) {
  const std::string_view bytes = e.unit.bytes;
  middle->clear();
  size_t pos = 0;
  while (pos + protocol::kHeaderSize <= bytes.size()) {
    const size_t end = pos + 1 + protocol::read_u32(bytes.data() + pos + 1);
    if (end > bytes.size() || end < pos + protocol::kHeaderSize) return false;
    switch (bytes[pos]) {
      case protocol::frontend::kParse:
      case protocol::frontend::kBind:
      case protocol::frontend::kDescribe:
      case protocol::frontend::kExecute:
      case protocol::frontend::kClose:
        middle->append(bytes.substr(pos, end - pos));
        break;
      case protocol::frontend::kSync:
      case protocol::frontend::kFlush:
        break;
      default:
        return false;
    }
    pos = end;
  }
  return pos == bytes.size() && !middle->empty();
}

}  // namespace pgtandem::proxy::replay_detail
