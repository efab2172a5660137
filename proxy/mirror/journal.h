// The durable journal of mirrored writes that could not be applied (target down, connection lost,
// mirror error, queue overflow). Append-only JSON lines; `pgtandem replay` applies it later in
// order and records what it applied, so applying the same journal twice never double-applies.
// Only failures reach the journal: it is off the hot path, and one mutex guards it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "policy/mirror/write_capture.h"

namespace pgtandem::proxy {

// Who the write belongs to: enough to open an equivalent session on the target.
struct JournalSession {
  std::string id;        // unique per pgtandem process and session: "<process start>-<n>"
  std::string user;
  std::string database;
  std::vector<std::pair<std::string, std::string>> params;  // the client's startup parameters
  // Session-state units (SET, PREPARE, ...) the mirror had applied before, in order: replay runs
  // them first on a fresh connection so the write sees the same settings.
  std::vector<std::string> state;
  // Parse messages of the named statements the unit binds.
  std::vector<std::pair<std::string, std::string>> prepared;
};

struct JournalEntry {
  uint64_t seq = 0;       // assigned by Journal::append
  std::string target;     // "new" or "old": where the write should have been applied
  std::string reason;     // target_unavailable | login_failed | connection_lost | mirror_error |
                          // queue_full | session_degraded
  std::string detail;     // error text
  bool uncertain = false; // sent, but the answer was lost: the target may have applied it
  JournalSession session;
  policy::MirrorUnit unit;
};

enum class FsyncPolicy { kAlways, kInterval, kNever };

class Journal {
 public:
  // Opens (creating) the file for appending; continues the sequence after the last entry found.
  static std::unique_ptr<Journal> open(const std::string& path, FsyncPolicy policy,
                                       uint32_t fsync_interval_ms, std::string* error);
  ~Journal();
  // Thread-safe. Returns the entry's sequence number, 0 if the write failed (counted, logged).
  uint64_t append(JournalEntry entry);
  uint64_t entries_written() const;
  uint64_t bytes() const;  // current file size
  uint64_t last_seq() const;  // the last entry's sequence number (0: none)
  const std::string& path() const;

 private:
  Journal();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Parsing, for replay and tests. One line -> entry; false with *error for a malformed line.
bool parse_journal_line(const std::string& line, JournalEntry* out, std::string* error);
std::string format_journal_line(const JournalEntry& entry);  // without the trailing newline
// The two halves of format_journal_line, for the writer: the entry's body (the costly part, base64,
// formatted outside the writer's lock) and the line around it with its number and the time now.
std::string journal_entry_body(const JournalEntry& entry);
std::string journal_line(uint64_t seq, const std::string& body);

}  // namespace pgtandem::proxy
