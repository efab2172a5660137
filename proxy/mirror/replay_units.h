// What the replay engine reads in a journal entry (proxy/mirror/replay.cc): the named statements a
// unit needs and touches (UnitScan), how an entry is wrapped so that its record on the target
// commits with it (Wrap), and the shapes that let a BEGIN..COMMIT or autocommit unit travel as
// two requests in a pipelined batch. Text only: no socket, no connection. Internal to the engine
// (replay.cc, replay_units.cc).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/mirror/write_capture.h"
#include "proxy/mirror/journal.h"

namespace pgtandem::proxy::replay_detail {

// What a unit's frontend messages need from, and do to, the connection's named statements.
struct UnitScan {
  uint32_t requests = 0;  // Query and Sync messages: each is answered by one ReadyForQuery
  // Named statements bound or described before the unit parses or closes them: they must exist.
  std::vector<std::string> needs;
  // Named statements the unit parses before using them otherwise: they must not exist yet (the
  // Parse succeeded on the primary), though an earlier entry may have prepared them here.
  std::vector<std::string> parses_first;
  // Named statements the unit parses or closes: unknown afterwards (the Parse may have failed).
  std::vector<std::string> touched;
  bool may_deallocate = false;  // a simple Query that may DEALLOCATE or DISCARD
  // Only Parse/Close/Describe/Sync/Flush: the mirror keeps such a session-state unit out of the
  // session's state (prepared statements travel in `prepared`).
  bool only_prepares = true;
};

bool contains_word_ci(std::string_view text, std::string_view word);

bool scan_unit(std::string_view bytes, UnitScan* out, std::string* error);

// The stored Parse of a named statement must be exactly one Parse message of that name.
bool check_prepared(const std::string& name, std::string_view bytes, std::string* error);

// How an entry is sent so that its record on the target commits with it (replay.h):
//   kTransaction: BEGIN; <record> first, the unit's own BEGIN only warns, its COMMIT commits both;
//   kAutocommit: BEGIN; <record>, the unit, COMMIT;
//   kRecordAfter: the unit as it is, the record in a transaction of its own after it.
enum class Wrap { kTransaction, kAutocommit, kRecordAfter };

Wrap wrap_for(const policy::MirrorUnit& u);

// The unit's first request when it is only its BEGIN (one statement: a Query without another
// statement, or one Execute up to the Sync, preparing nothing): its length, else 0. The wrap's
// own `BEGIN; <record>` then replaces it, instead of preceding it (a second BEGIN would only warn,
// once per entry in the target's log).
size_t leading_begin(std::string_view bytes);


// The text of a statement a request runs: a Query's SQL, or for Bind .. Execute the Parse of the
// statement it binds (an unnamed one parsed in the same request, else the journaled Parse).
bool statement_text(const JournalEntry& e, std::string_view bytes, size_t from, size_t to,
                    std::string* sql);

// "COMMIT", "END", "COMMIT WORK", "end transaction;" ...: a plain commit (not AND CHAIN, not
// PREPARE TRANSACTION), one statement.
bool is_plain_commit(std::string_view sql);

// A BEGIN..COMMIT unit pipelined as two requests (JournalApplier::Impl::plan_batch): the wrap's
// BEGIN and record, then the unit's statements with their Syncs dropped, ended by one Sync; and
// the engine's own COMMIT as a simple Query. `middle` gets the statements' messages. Only when
// the unit is [a lone BEGIN request][extended-query messages][a lone plain COMMIT request]: the
// statements then run in the same transaction, in the same order, as on the primary (a Sync
// inside a transaction block only answers and flushes), and whatever fails, the COMMIT request
// ends the block (COMMIT of a failed block rolls it back), so the next entry starts idle.
bool shape_transaction(const JournalEntry& e, std::string* middle);

// A plain DML autocommit unit of extended-query messages only: its messages without Sync/Flush.
bool shape_autocommit(const JournalEntry& e, std::string* middle);

}  // namespace pgtandem::proxy::replay_detail
