// What the replay engine reads in a unit's frontend messages (proxy/mirror/replay.cc): the named
// statements it needs and touches, and how an entry is sent (its wrap, its statements without
// BEGIN, COMMIT or Syncs, the record's SQL). Text only: no socket, no connection. Internal to the
// engine.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "policy/mirror/write_capture.h"

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

// The target's record of what was applied: one row per journal and session, the last seq.
inline constexpr const char* kMarkerTable = "public.pgtandem_mirror_applied";

// How an entry is sent so that its record on the target commits with it (replay.h):
//   kTransaction: BEGIN; <record> first, the unit's own BEGIN only warns, its COMMIT commits both;
//   kAutocommit: BEGIN; <record>, the unit, COMMIT;
//   kRecordAfter: the unit as it is, the record in a transaction of its own after it.
enum class Wrap { kTransaction, kAutocommit, kRecordAfter };
Wrap wrap_for(const policy::MirrorUnit& u);

// The record's failure when the target already holds the entry (record_sql).
inline constexpr std::string_view kAlreadyRecorded = "22P02";
bool already_recorded(const std::vector<policy::Outcome>& record_answers);
bool any_error(const std::vector<policy::Outcome>& outcomes);
// INSERT .. ON CONFLICT of the record, refusing a seq the target already holds; `session` and
// `seq` are SQL expressions (literals or parameters).
std::string record_sql(const std::string& session, const std::string& seq);

// Appends the unit's messages from `from` on without their Syncs to *out when all are
// extended-query messages; false (nothing appended) otherwise.
bool without_syncs(std::string_view bytes, size_t from, std::string* out);
// The length of the unit's first request when it is only its BEGIN, else 0.
size_t leading_begin(std::string_view bytes);
// Where the unit's last request starts when it is only its COMMIT, else npos.
size_t trailing_commit(std::string_view bytes);

}  // namespace pgtandem::proxy::replay_detail
