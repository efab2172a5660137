// `pgtandem replay --config FILE --journal FILE [--dry-run]`: applies the journal of mirrored
// writes that could not be applied (journal.h) to their targets, in sequence order, and reports
// what it did.
//
// Per journal session id and target, one connection, logged in as the session's user and
// database with its startup parameters (the password from mirror.credentials_file, pgpass
// format). On a fresh connection the session's `state` units run first; before each unit, the
// named statements it binds are prepared from the entry's `prepared` Parse messages unless the
// connection already holds them with the same bytes. The unit's outcomes (CommandComplete tags,
// error SQLSTATEs) are compared with the primary's: a difference is a divergence, reported and
// counted, and replay goes on. A failure to apply (cannot connect or log in, connection lost, a
// malformed entry) stops replay at that entry.
//
// Applying twice never double-applies: after each entry, `<journal>.applied` records the entry's
// seq and a fingerprint of its line (written to a temporary file, fsynced, renamed). Entries up to
// that seq are skipped. The fingerprint ties the record to this journal: a record that does not
// match the journal's line with that seq (the journal was replaced) stops replay instead of
// skipping entries it never applied.
//
// The remaining window: an entry applied on the target whose record did not reach the disk
// (replay killed, or the connection lost after the unit was sent, before its last answer) is
// applied again by the next run. Such an entry is reported as "may have been applied"; a repeated
// INSERT then shows up as a divergence (duplicate key) rather than silently.
//
// Exit status: 0 everything applied as on the primary; 1 a failure stopped replay (or the journal,
// config or applied-state could not be read); 2 everything applied, with divergences, or with a
// torn last line that was not applied (a crash mid-append; reported).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>

#include "config/config.h"

namespace pgtandem::proxy {

struct ReplayOptions {
  bool dry_run = false;  // read and check the journal, report what would be applied; no I/O
  std::chrono::milliseconds login_timeout{10000};
  // For one unit's exchange (send and all its answers); 0: no limit. A unit that times out is a
  // failure that stops replay, and it may have been applied.
  std::chrono::milliseconds unit_timeout{0};
  size_t max_connections = 16;  // open session connections; the least recently used is closed
  std::string application_name = "pgtandem-replay";  // unless the session carried its own
};

struct ReplaySummary {
  uint64_t entries_read = 0;      // whole lines read from the journal
  uint64_t applied = 0;           // applied in this run (divergent ones included)
  uint64_t already_applied = 0;   // skipped: seq <= the recorded applied seq
  uint64_t divergences = 0;       // applied entries whose outcomes differ from the primary's
  uint64_t failures = 0;          // 0 or 1: replay stops at the first
  uint64_t not_attempted = 0;     // whole lines after the failure, left for the next run
  uint64_t uncertain = 0;         // applied entries marked uncertain in the journal
  bool torn_tail = false;         // the last line had no newline (not applied)
  uint64_t last_applied_seq = 0;  // as recorded at the end
};

// The whole command. Writes a readable report to `report`; returns the exit status above.
int run_replay(const config::Config& cfg, const std::string& journal_path,
               const ReplayOptions& opts, std::ostream& report);
int run_replay(const config::Config& cfg, const std::string& journal_path,
               const ReplayOptions& opts, std::ostream& report, ReplaySummary* summary);

// The path of the applied-state file for a journal: `<journal>.applied`.
std::string applied_state_path(const std::string& journal_path);

// `pgtandem replay ...` from main(): argv[0] is "replay". Loads the config, runs, prints the
// report to stdout; usage errors print to stderr and return 64.
int replay_main(int argc, char** argv);

}  // namespace pgtandem::proxy
