// One round trip for many mirrored transactions instead of one per statement.
//
// A transaction the primary committed reaches the mirror as one unit: the client's requests in
// order (BEGIN, the statements, COMMIT), each ending in a Query or a Sync that the target answers
// with a ReadyForQuery of its own. Sent as they are, the target reads, answers and flushes once per
// request, and the mirror link wakes once per answer. When every statement of the unit succeeded
// on the primary, the same statements can reach the target as part of a single request with the
// same meaning, because the transaction block already makes them one unit of work:
//   - simple protocol: the Query texts joined into one multi-statement Query (each text ends with
//     a newline and a semicolon, so a trailing `--` comment cannot swallow the separator);
//   - extended protocol: the messages as they are, without the Syncs between them (one Sync at the
//     end), as a pipelining driver would send them.
// Several such units of one session, queued behind each other, join the same request: each
// BEGIN..COMMIT still commits on its own. The target answers with the same CommandCompletes in the
// same order and one ReadyForQuery. On an error it skips everything after it in the request (the
// rest of the Query, or up to the Sync), so the units after the failing one are not applied at all
// and keep their place in the session's order, and it leaves the failing transaction block
// aborted: the caller rolls it back. Since PostgreSQL 13 statement_timeout applies to each
// statement of a multi-statement Query and to each Execute, so joining changes no timeout.
//
// Not joined (sent as they are): units with an error on the primary (a failed statement before
// ROLLBACK TO SAVEPOINT must fail alone, and what follows must still run), units that do not start
// with BEGIN / START TRANSACTION and end with COMMIT, units ending a transaction in the middle
// (COMMIT AND CHAIN, PREPARE TRANSACTION, ROLLBACK TO), COPY, fast-path calls, a mix of simple
// and extended messages, and Query texts that change how the rest would be lexed
// (standard_conforming_strings, backslash_quote: a multi-statement Query is lexed whole before its
// first statement runs).
#pragma once

#include <cstddef>
#include <string>

#include "policy/mirror/write_capture.h"

namespace pgtandem::policy {

class TransactionBatch {
 public:
  enum class Kind { kEmpty, kSimple, kExtended };

  // Adds the unit's statements if it can join the batch (it can be sent this way, and speaks the
  // same protocol as the units already in); false, and the batch unchanged, otherwise.
  bool add(const MirrorUnit& unit);
  // The request that applies every unit added, in order: valid until the next add() or clear().
  const std::string& request();
  void clear();

  Kind kind() const { return kind_; }
  size_t units() const { return units_; }
  size_t bytes() const { return body_.size() - sealed_; }

 private:
  bool add_synced(const MirrorUnit& unit);
  void unseal();
  Kind kind_ = Kind::kEmpty;
  size_t units_ = 0;
  // simple: the Query's header, then the joined texts; extended: the messages without Syncs.
  // request() ends it in place (sealed_ bytes: the text's NUL, or the Sync).
  std::string body_;
  size_t sealed_ = 0;
};

}  // namespace pgtandem::policy
