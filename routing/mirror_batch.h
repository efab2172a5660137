// One round trip per mirrored transaction instead of one per statement.
//
// A transaction the primary committed reaches the mirror as one unit: the client's requests in
// order (BEGIN, the statements, COMMIT), each ending in a Query or a Sync that the target answers
// with a ReadyForQuery of its own. Sent as they are, the target reads, answers and flushes once per
// request, and the mirror link wakes once per answer. When every statement of the unit succeeded
// on the primary, the same statements can reach the target as a single request with the same
// meaning, because the transaction block already makes them one unit of work:
//   - simple protocol: the Query texts joined into one multi-statement Query (each text ends with
//     a newline and a semicolon, so a trailing `--` comment cannot swallow the separator);
//   - extended protocol: the messages as they are, without the Syncs between them (the last one
//     stays), as a pipelining driver would send them.
// The target answers with the same CommandCompletes in the same order and one ReadyForQuery. On an
// error it skips the rest (up to the Sync, or to the end of the Query) and leaves the transaction
// block aborted: the caller rolls it back. Since PostgreSQL 13 statement_timeout applies to each
// statement of a multi-statement Query and to each Execute, so joining changes no timeout.
//
// Not coalesced (sent as they are): units with an error on the primary (a failed statement before
// ROLLBACK TO SAVEPOINT must fail alone, and what follows must still run), units that do not start
// with BEGIN / START TRANSACTION and end with COMMIT, units ending a transaction in the middle
// (COMMIT AND CHAIN, PREPARE TRANSACTION, ROLLBACK TO), COPY, fast-path calls, a mix of simple
// and extended messages, and Query texts that change how the rest would be lexed
// (standard_conforming_strings, backslash_quote: a multi-statement Query is lexed whole before its
// first statement runs).
#pragma once

#include <string>

#include "routing/write_capture.h"

namespace pgtandem::routing {

// Writes into `out` (replacing its contents) the unit as one request and returns true; false,
// `out` unspecified, when the unit must be sent as it is.
bool coalesce_transaction(const MirrorUnit& unit, std::string& out);

}  // namespace pgtandem::routing
