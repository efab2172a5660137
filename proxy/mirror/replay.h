// `pgtandem replay --config FILE --journal FILE [--dry-run]`: applies the journal of mirrored
// writes that could not be applied (journal.h) to their targets, in commit order, and reports
// what it did. The same engine (JournalApplier) is what a running pgtandem's automatic catch-up
// (catchup.h) applies its own backlog with, so the two never disagree about what was applied.
//
// Order: by writing process (in the order the processes appended), then by the commit-order
// number the unit got in that process (policy/mirror/mirror_order.h; the journal entry's
// `order`), then by file position. Entries without a number (older journals, hand-made ones) keep
// file order.
//
// Connections: one per target, user, database, startup parameters and session state, shared by
// every journaled session that has the same ones (the password from mirror.credentials_file,
// pgpass format). On a fresh connection the `state` units run first; before each unit, the named
// statements it binds are prepared from the entry's `prepared` Parse messages unless the
// connection already holds them with the same bytes. Consecutive entries on one connection go as
// one pipelined request (up to 64 entries or 256 KB): one round trip, the target runs them in
// order, each transaction still commits on its own. The unit's outcomes (CommandComplete tags,
// error SQLSTATEs) are compared with the primary's: a difference is a divergence, reported and
// counted, and replay goes on. A failure to apply (cannot connect or log in, connection lost, a
// malformed entry) stops replay at that entry.
//
// Exactly once: each entry's record is written on the target in the same transaction as the
// entry, into `public.pgtandem_mirror_applied (session, seq)` (created on first use, one row per
// journaled session): for a BEGIN..COMMIT unit, `BEGIN; INSERT .. ON CONFLICT ..` goes ahead of
// it (its own BEGIN then only warns, its COMMIT commits both); a plain DML autocommit unit is
// wrapped in BEGIN .. COMMIT the same way. A connection reads the table when it opens and skips
// what it records, so an entry whose answer was lost (replay or pgtandem killed, connection lost
// mid-batch) is not applied again. `<journal>.applied` (seq and a fingerprint of that line,
// written to a temporary file, fsynced, renamed) is group-committed (every 200 ms and at the end)
// and only saves re-reading: entries up to its seq are skipped without asking the target. The
// fingerprint ties it to this journal: a record that does not match the journal's line with that
// seq (the journal was replaced) stops replay instead of skipping entries it never applied.
//
// The remaining window: units that cannot run inside a transaction block or hold transaction
// control of their own besides BEGIN..COMMIT (VACUUM, CREATE DATABASE, COMMIT AND CHAIN, session
// state ...) are recorded by a statement right after them: killed in between, such a unit is
// applied again; and where the target's table cannot be created (no CREATE on schema public), the
// applied-state file alone records, per batch. Such an entry is reported as "may have been
// applied"; a repeated INSERT then shows up as a divergence (duplicate key) rather than silently.
//
// Exit status: 0 everything applied as on the primary; 1 a failure stopped replay (or the journal,
// config or applied-state could not be read); 2 everything applied, with divergences, or with a
// torn last line that was not applied (a crash mid-append; reported).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
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
  size_t max_connections = 16;  // open connections; the least recently used is closed
  bool exactly_once = true;     // record each entry on the target with it (see above)
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
  uint64_t groups = 0;            // transactions that committed several entries at once
  uint64_t groups_retried = 0;    // groups rolled back and sent again one entry at a time
  bool torn_tail = false;         // the last line had no newline (not applied)
  uint64_t last_applied_seq = 0;  // as recorded at the end
};

// What one pass of the engine did.
struct PassResult {
  uint64_t applied = 0;      // applied in this pass (divergent ones included)
  uint64_t skipped = 0;      // found recorded on the target: applied before
  uint64_t divergences = 0;
  uint64_t groups = 0;          // transactions that committed several entries (apply_group)
  uint64_t groups_retried = 0;  // groups rolled back and sent again one entry at a time
  bool failed = false;       // `failure` stopped the pass at an entry (retried by the next one)
  std::string failure;
};

// For catch-up inside the running pgtandem: its own entries wait for their commit order.
struct ApplyHooks {
  std::string process_tag;  // session ids "<process_tag>-<n>" are the running process's
  // Every unit numbered up to this is settled (applied live or journaled): MirrorOrder.
  std::function<uint64_t()> done_through;
};

// The engine. Not thread-safe: one thread drives it (the replay command, or catch-up's thread).
class JournalApplier {
 public:
  JournalApplier(const config::Config& cfg, std::string journal_path, ReplayOptions opts,
                 std::ostream& report, ReplaySummary* summary);
  ~JournalApplier();
  // Reads the applied-state and the credentials, opens the journal for reading.
  bool open(std::string* error);
  // Reads the lines appended since the last pass and applies the entries that are ready, in
  // commit order; records what it applied (group commit).
  PassResult pass(const ApplyHooks* hooks);
  size_t pending() const;           // read, not yet applied
  uint64_t pending_bytes() const;   // their journal bytes
  int64_t oldest_pending_time() const;  // unix seconds of the oldest of them; 0: none
  uint64_t read_through() const;    // the last seq read from the journal
  uint64_t file_offset() const;     // journal bytes read
  uint64_t recorded_seq() const;    // the applied-state's seq

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
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
