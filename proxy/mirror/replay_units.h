// What the replay engine reads in a unit's frontend messages (proxy/mirror/replay.cc): the named
// statements it needs and touches. Text only: no socket, no connection. Internal to the engine.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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

}  // namespace pgtandem::proxy::replay_detail
