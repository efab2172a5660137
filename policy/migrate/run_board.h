// What a running pgtandem knows of the migration commands (issue 13). backfill, verify and repair
// run as separate processes; while they run they POST their state document (the same JSON they
// write to <state-dir>/<command>-state.json) to every pgtandem's admin endpoint
// (POST /migrate/progress, docs/migration.md "Progress in pgtandem"). The board keeps the latest
// document per command and renders it for /status and /metrics, and answers whether a mirror
// divergence may come from rows the backfill has not copied yet.
//
// Pure and not thread-safe: the caller (proxy/server.cc) holds a mutex around it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/migrate/json.h"

namespace pgtandem::policy::migrate {

class RunBoard {
 public:
  // A command's state not updated for this long while it says "running" is shown as "stopped"
  // (killed, or it lost its way to this pgtandem).
  static constexpr int64_t kStaleSeconds = 30;
  // At most this many tables per command are kept (per-table metrics stay bounded).
  static constexpr size_t kMaxTables = 200;

  // `body`: a state document {"command":"backfill"|"verify"|"repair","run":"...","state":
  // "running"|"done"|"failed",...}. False with *error when malformed or of an unknown command.
  bool update(std::string_view body, int64_t now_unix, std::string* error);

  // {"backfill":{...}|null,"verify":...,"repair":...}: each the latest document, with "state"
  // "stopped" when stale, "received_at", and "last_result" (the last finished run's end time,
  // exit code, duration), kept across a new run until that one finishes.
  std::string status_json(int64_t now_unix) const;
  // Prometheus text: pgtandem_<command>_{rows,chunks,bytes,differences,repaired,running,
  // last_run_timestamp_seconds,last_run_exit_code,last_run_duration_seconds} for backfill, verify,
  // repair, and pgtandem_backfill_table_{rows,done}{table}.
  std::string prometheus(int64_t now_unix) const;

  // Whether a mirror divergence on `table` ("schema.table" or a bare name; "" = unknown) may come
  // from rows the backfill has not copied yet: a backfill was reported (running, stopped or
  // failed) and has not finished that table (table ""/unknown to it: any table).
  bool backfill_pending(std::string_view table = {}) const;
  // The same for a divergence whose statements reference `tables` (policy/migrate/divergence.h):
  // pending if any of them is; an empty list (tables unknown) is the global answer.
  bool backfill_pending_any(const std::vector<std::string>& tables) const;

  struct LastResult {
    int64_t finished_at = 0;  // unix seconds
    int64_t exit_code = 0;    // verify: 0 identical, 1 differences
    double seconds = 0;
  };
  // The last finished run of `command` (nullopt: none reported since this pgtandem started).
  // The cutover's verify gate reads it (proxy/control/cutover.cc).
  std::optional<LastResult> last_result(std::string_view command) const;

 private:
  struct Entry {
    Json doc;
    int64_t received_at = 0;
    std::optional<LastResult> last;
  };
  const Entry* entry(std::string_view command) const;
  std::string state_of(const Entry& e, int64_t now_unix) const;
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace pgtandem::policy::migrate
