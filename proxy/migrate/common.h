// What the four migration commands (preflight, backfill, verify, repair; issue 13) share: the
// command line, connections to both targets from the proxy's config and credentials, the schema
// read from the catalog, the mirror barrier (the running pgtandems' watermarks), the locked copy
// of one chunk, progress, the state file and the audit log. Design and guarantee:
// docs/migration.md.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "policy/migrate/json.h"
#include "policy/migrate/schema.h"
#include "policy/migrate/sql.h"
#include "policy/migrate/state.h"
#include "proxy/migrate/pg_conn.h"

namespace pgtandem::proxy::migrate {

namespace pm = policy::migrate;

// The command line. Every setting but --config, --tables, --report, --no-watermark and
// --allow-cast has a [migrate] key of the same name (config/config.h): make_context() fills the
// ones no flag gave from the file (flags override the file), so read them from Context::opt.
struct Options {
  std::string config_path;
  std::string user, dbname;
  std::vector<std::string> tables;  // --tables a,b (schema.table or table)
  int jobs = 2;
  int64_t max_rate = 0;        // rows/s over all jobs; 0 = unlimited
  int64_t chunk_rows = 10000;  // rows per chunk
  int64_t chunk_memory = 64 << 20;  // backfill: a chunk up to this many bytes is held in memory
  std::string state_dir;       // default: [migrate] state_dir (the proxy's state_dir)
  std::vector<std::string> admins;  // HOST:PORT of every running pgtandem
  bool no_watermark = false;        // copy without the mirror barrier (only with writes stopped)
  int commit_grace_ms = 50;         // see docs/migration.md, "the answer still on its way"
  int watermark_timeout_ms = 60000;
  int recheck_delay_ms = 1000;
  std::string mode = "auto";    // backfill: --mode auto|snapshot|chunked ([migrate] backfill_mode)
  int fence_lease_ms = 15000;   // backfill: --fence-lease-ms ([migrate] fence_lease_ms)
  std::string report;  // verify: where to write; repair: what to read
  std::vector<std::string> allowed_casts;  // preflight: "old_type->new_type"
  bool use_admin_token = true;             // [migrate] use_admin_token (no flag)
  std::set<std::string> given;             // the flags given on the command line
};

// Parses argv (after the command name). `allowed`: the flags this command takes, e.g.
// {"--config", "--tables"}. False with *error (usage problems: exit 2).
bool parse_options(int argc, char** argv, const std::vector<std::string>& allowed, Options* out,
                   std::string* error);

struct Context {
  Options opt;
  config::Config cfg;
  ConnSpec primary, secondary;  // the primary target and the other one
  std::string primary_name, secondary_name;
  bool mirror_writes = false;
  // Where progress is POSTed (every running pgtandem: --admin, else the config's [admin] listen)
  // and the bearer token it needs ([admin] token or token_file; "" = progress not reported).
  std::vector<std::string> report_admins;
  std::string admin_token;
};
bool make_context(const Options& opt, const std::string& application_name, Context* ctx,
                  std::string* error);

bool fetch_schema(PgConn& conn, pm::Schema* out, std::string* error);
// The tables the command works on: all, or those named by --tables (an unknown name is an error).
bool select_tables(const pm::Schema& schema, const std::vector<std::string>& names,
                   std::vector<const pm::Table*>* out, std::string* error);
pm::TableSql table_sql(const pm::Table& t);  // canonical columns, chosen key and its types

// GET /mirror/watermark of one pgtandem admin endpoint.
struct Watermark {
  uint64_t last_assigned = 0, done_through = 0, pending = 0;
  // With `drain_query`: whether the pgtandem knows the answer drain (older ones ignore the
  // query), the drain's token (0: refused, ask again) and whether it has drained.
  bool drain_known = false, drained = false;
  uint64_t drain = 0;
};
// `drain_query`: "" (the watermark only), "drain=start" or "drain=<token>" (admin_http.h).
bool fetch_watermark(const std::string& host_port, Watermark* out, std::string* error,
                     const std::string& drain_query = "");
// One HTTP/1.1 request to a pgtandem admin endpoint (Connection: close). *status: the status code;
// *body: the response body. False with *error when it could not be sent or answered.
bool admin_request(const std::string& host_port, const std::string& method, const std::string& path,
                   const std::vector<std::string>& headers, const std::string& body, int timeout_ms,
                   int* status, std::string* response_body, std::string* error);

// GET /status of every pgtandem the command knows (Context::report_admins): its needs-repair marks
// (policy/migrate/marks.h; read = false where it could not be read).
std::vector<pm::AdminMarks> read_marks(const Context& ctx);
// After a clean verify of every table (or a repair of such a verify's report, verified again
// clean): on each pgtandem, POSTs the clear that plan_clear() allows against `at_start` (the
// marks seen when that verify started), prints what was cleared and what was kept and why, and
// records it in *details (the audit line). docs/migration.md, "Marks cleared by a clean verify".
void clear_marks_after_clean_verify(const Context& ctx, const std::vector<pm::AdminMarks>& at_start,
                                    pm::Json* details);

// A connection pair for one worker: the primary's and the other target's.
struct ConnPair {
  std::unique_ptr<PgConn> primary, secondary;
  // Backfill: a second primary connection, so that the next chunk is read while this one is
  // written (docs/migration.md, "Overlapped chunks").
  std::unique_ptr<PgConn> primary2;
  bool replica_role = false;  // session_replication_role = replica took on the other target
};
bool open_pair(const Context& ctx, ConnPair* pair, std::string* error, bool second_primary = false);

// Sets the sequence on the other target to at least the primary's last_value (setval; never
// lowers it: ahead is harmless, behind breaks a cutover). *raised: whether it moved.
bool raise_sequence(ConnPair& pair, const pm::Sequence& s, bool* raised, std::string* error);

// --state-dir, else [migrate] state_dir (by default the proxy's state_dir; never the working
// directory), created (with its parents, 0700) if missing; "" with *error when it cannot be.
std::string state_dir(const Options& opt, std::string* error = nullptr);
// --max-rate: sleeps until `total` rows since `started` fit in `rows_per_s` (0: no cap), in steps
// of at most `max_step_ms`, or until `stop` is set (both backfill copies).
void wait_for_rate_cap(int64_t total, int64_t rows_per_s, std::chrono::steady_clock::time_point started,
                       const std::atomic<bool>& stop, int64_t max_step_ms);

// <state-dir>/backfill/<table>.json: a table's backfill checkpoint (both copy modes).
std::string checkpoint_path(const Options& opt, const std::string& table);
// Writes <state-dir>/<name> atomically (temp file + rename).
bool write_file_atomic(const std::string& path, const std::string& content, std::string* error);
bool read_whole_file(const std::string& path, std::string* out);
// Appends one JSON line to <state-dir>/audit.log: time, command, arguments, outcome, details.
void audit(const Options& opt, const std::string& command, int exit_code, pm::Json details);

class MirrorBarrier;  // chunk_copy.h

// Per-table progress: on a terminal one updating line per active table; otherwise plain lines
// every few seconds. Every second it also rewrites <state-dir>/<state_file> (JSON) and POSTs the
// same document to every running pgtandem (POST /migrate/progress: /status and /metrics show it;
// docs/migration.md, "Progress in pgtandem").
class Progress {
 public:
  // ctx: where to report (nullptr: nowhere).
  Progress(std::string command, std::string state_path, const Context* ctx = nullptr);
  ~Progress();
  void start();
  void stop();  // final lines (state "done", exit code 0, unless finish() said otherwise)
  // The run's result: the final state document says "done" (0, or verify's 1) or "failed".
  void finish(int exit_code, std::string error = {});
  void table_started(const std::string& table, int64_t estimated_rows);
  void add(const std::string& table, int64_t rows, int64_t bytes, int64_t chunks = 1);
  void table_done(const std::string& table);
  // The barrier whose counts (drained / by the grace) the state document carries.
  void set_barrier(const MirrorBarrier* b) { barrier_ = b; }
  void add_differences(int64_t n) { differences_ += n; }
  void add_repaired(int64_t n) { repaired_ += n; }

 private:
  struct Entry {
    int64_t estimated = -1, rows = 0, bytes = 0, chunks = 0;
    bool done = false;
    std::chrono::steady_clock::time_point started;
    double seconds = 0;
  };
  void tick(bool final, bool print);
  void post(const std::string& body);
  const MirrorBarrier* barrier_ = nullptr;
  std::string command_, state_path_;
  std::vector<std::string> admins_;
  std::string token_, run_id_;
  int64_t started_unix_ = 0;
  int exit_code_ = 0;
  std::string error_;
  bool post_warned_ = false;
  std::mutex mu_;
  std::map<std::string, Entry> tables_;
  std::atomic<int64_t> differences_{0}, repaired_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
  bool tty_ = false;
  size_t lines_drawn_ = 0;
  std::chrono::steady_clock::time_point started_;
};

// One line with the mark: "✓ text" / "✗ text" / "! text".
void print_check(char mark, const std::string& text);

}  // namespace pgtandem::proxy::migrate
