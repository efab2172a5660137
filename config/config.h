// pgtandem configuration: TOML file -> plain validated structs. No toml++ in this header.
// Every key, type and default: docs/configuration.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pgtandem::config {

struct ListenAddress {
  // Numeric IPv4, IPv6 without brackets ("::1"), "localhost", or "*" (all interfaces).
  std::string host;
  uint16_t port = 0;
};

struct Target {
  std::string name;  // "old" or "new"
  std::string host = "127.0.0.1";
  uint16_t port = 5432;
  std::string unix_socket_dir;  // when set, connect over <dir>/.s.PGSQL.<port> instead of TCP
  // TLS to this target, as libpq's options of the same names: disable | prefer (TLS if the server
  // offers it, no verification) | require (TLS, no verification) | verify-ca (the chain ends in
  // sslrootcert) | verify-full (and the certificate names `host`). Applies to every connection
  // pgtandem opens to the target. Unix-socket targets never use TLS (require and up are errors).
  std::string sslmode = "prefer";
  // (Default member initializers keep aggregate initializations that stop at unix_socket_dir
  // free of -Wmissing-field-initializers.)
  std::string sslrootcert = {};  // CA file (PEM); required by verify-ca and verify-full
  std::string sslcert = {};      // client certificate (PEM) presented to the target; with sslkey
  std::string sslkey = {};
};

// TLS termination for clients (`[tls]`, PgBouncer's client_tls_* vocabulary). The certificate files
// are read again on every reload (SIGHUP), so a renewed certificate needs no restart.
struct Tls {
  // disable: SSLRequest is answered 'N' | allow, prefer: TLS when the client asks |
  // require: a TCP client that does not ask for TLS is refused (FATAL 28000).
  std::string mode = "disable";
  std::string cert_file;    // PEM certificate chain pgtandem presents
  std::string key_file;     // its private key (PEM)
  std::string ca_file;      // optional: client certificates signed by it are requested and checked
  std::string min_version = "1.2";  // "1.2" | "1.3"
  bool enabled() const { return mode != "disable"; }
};

struct Limits {
  uint32_t max_message_size = 0x3fffffff - 1;  // bytes; server's own cap by default
  uint32_t startup_timeout_ms = 10000;         // client must finish startup+auth within this
  uint32_t connect_timeout_ms = 5000;          // TCP connect to a target
  uint32_t max_unauthenticated = 1000;         // clients still in startup/auth, all workers
  uint32_t max_client_connections = 10000;     // concurrent clients, all workers
};

struct Admin {
  std::string listen_host = "127.0.0.1";  // localhost by default; same forms as ListenAddress::host
  uint16_t listen_port = 9930;            // 0 disables the admin listener
  // Bearer token for the mutating endpoints (POST /reload, POST /breaker/reset): either inline or
  // read from a file at start (its contents trimmed of surrounding whitespace); at most one of
  // the two. Neither: those endpoints answer 403.
  std::string token;
  std::string token_file;
  bool enabled() const { return listen_port != 0; }
};

// Graceful shutdown (SIGTERM): how long sessions get to reach an idle boundary and the mirror
// queues to drain before pgtandem journals what is left and exits.
struct Shutdown {
  uint32_t drain_timeout_ms = 30000;
};

// Write mirroring (issue 3): every write the primary executed is applied on the other target.
struct Mirror {
  // pgtandem's own credentials for the targets, in pgpass format (host:port:database:user:password).
  // Mirror connections log in as the client's user with the password found here; no entry
  // means no password (trust).
  std::string credentials_file;
  uint64_t session_queue_bytes = 8u << 20;   // writes waiting for the mirror, per session
  uint64_t global_queue_bytes = 256u << 20;  // the same, all sessions together
  // When a queue is full: "journal" (default: the write goes to the journal and the client goes
  // on) or "block" (the client's next request waits for room: backpressure instead of lag).
  std::string overflow = "journal";
  // The journal file. Relative paths (and the default, "mirror.journal") are resolved against the
  // top-level state_dir when the file is loaded: the value held here is always absolute.
  std::string journal_path = "mirror.journal";
  std::string journal_fsync = "interval";  // always | interval | never
  uint32_t journal_fsync_interval_ms = 100;
  uint32_t reconnect_interval_ms = 1000;  // after a failure, how soon a session tries the target again
  // A unit applied live on the mirror with no answer past this moves the session to the journal,
  // as a lost connection does (a hung target must not grow the link's queue in memory); the unit
  // in flight waits for its answer, and is marked for repair if none comes (docs/design.md,
  // "Apply timeout").
  uint32_t apply_timeout_ms = 5000;
  // Journal size limit (issue 15): the file's size in bytes past which `journal_full` applies.
  uint64_t journal_max_bytes = uint64_t{1} << 30;
  // At the limit: "stop" (default: mirroring to the target stops, the target is marked as needing
  // verify/repair, clients never wait) or "block" (mirrored sessions' next request waits at a
  // request boundary for the journal to get below the limit, at most journal_full_timeout_ms,
  // then the client gets FATAL 53400 and is disconnected). docs/design.md, "Mirroring".
  std::string journal_full = "stop";
  uint32_t journal_full_timeout_ms = 30000;
  // Automatic catch-up (issue 15): once the target is back, pgtandem applies its own journal
  // backlog in the background and returns every session to live mirroring. Off: the journal waits
  // for `pgtandem replay` and a degraded session journals until it ends. Restart-only.
  bool catchup = true;
  // Threads of their own for the mirror links (issue 17; docs/design.md 4.2), at nice `link_nice`
  // so that the relay's threads win the cores on a busy machine. 0: each link runs on its
  // client's worker (as before). Restart-only.
  uint32_t link_threads = 1;
  uint32_t link_nice = 10;
};

// Statement classification knobs.
struct Classifier {
  std::vector<std::string> read_only_functions;  // never writes, whatever pg_proc says
  std::vector<std::string> writing_functions;    // always writes
  bool unknown_function_is_write = true;
  // Learn function volatility from the primary's pg_proc at start (as Pgpool-II does) by logging
  // in as this user (password from mirror.credentials_file); empty: don't, and functions the
  // classifier does not know count as unknown_function_is_write says.
  std::string catalog_user;
  std::string catalog_database;  // default: the user name, as on the server
};

// Read routing (issue 4). `[routing]` holds what all rules share; `[[routes]]` are the rules,
// first match wins. Only reads are ever routed away from the primary (the proxy enforces that:
// transactions, writes, pinned sessions and read-your-writes stay on the primary).
struct RouteMatch {
  // Every list that is given must match (AND across keys); within a list, any entry (OR).
  // Empty list = that key is not a condition.
  std::vector<std::string> users;
  std::vector<std::string> databases;
  std::vector<std::string> application_names;
  std::vector<std::string> client_cidrs;  // "10.0.0.0/8", "::1/128", "192.168.1.7" (= /32)
  // Tables the statement references, as written or schema-qualified ("accounts", "public.accounts"),
  // compared lowercase for unquoted names. Any listed table referenced => match.
  std::vector<std::string> tables;
  // libpg_query fingerprints (16 hex digits, as pg_query_fingerprint gives them).
  std::vector<std::string> fingerprints;
  // sqlcommenter-style comment tags, e.g. /* tenant='42',route='canary' */: every key listed
  // must be present with one of its values.
  std::vector<std::pair<std::string, std::vector<std::string>>> tags;
};

struct Route {
  std::string name;  // unique; default "route-<index>" (1-based); used in metrics and logs
  RouteMatch match;
  // Action: exactly one of `target` or `percent`.
  std::string target;            // "old" | "new" | "primary": all matched reads go there
  std::optional<double> percent;  // 0..100: that share of matched reads to "new", rest to primary
  // What the percentage hashes: "session" (default) | "user" | "application_name" |
  // "client_address" | "tag:<name>" (falls back to session when the tag is absent).
  std::string hash_key = "session";
  std::optional<double> shadow_sample_rate;  // issue 5: 0..1, per rule; unset = [shadow] default
  // Comparison options for the shadow reads of this rule's reads; unset = the [shadow] value.
  std::optional<std::vector<std::string>> shadow_ignore_columns;
  std::optional<int> shadow_float_significant_digits;
  std::optional<double> shadow_float_tolerance;
  std::optional<bool> shadow_ignore_column_order;
  uint32_t line = 0;  // where the rule is in the file, for logs
};

struct Routing {
  // Consistent hashing seed. Same seed + same key => same decision on every replica. Changing it
  // reshuffles every percentage rule.
  std::string hash_seed = "pgtandem";
  // Read-your-writes: after a session writes, its reads stay on the primary until its mirrored
  // writes are applied on the other target (routed reads share the mirror's connection, so with
  // mirror_writes on this always holds). With mirror_writes off the other target never gets the
  // session's writes: true (default) keeps such a session's reads on the primary for good; false
  // routes them anyway (stale reads of its own writes accepted).
  bool read_your_writes = true;
  // A routed read that fails on the other target before any of its answer reached the client (an
  // error, or a lost connection) is run on the primary instead. false: the other target's error
  // answer reaches the client as it is (to see new's errors during a canary); a connection lost
  // before any answer still falls back, as there is nothing else to give the client.
  bool fallback_to_primary = true;
};

// Circuit breaker per non-primary target: too many failures (or shadow mismatches) among routed
// reads over a sliding window send every read back to the primary for a cool-down; then a few
// trial reads (half-open) decide whether to close it again.
struct Breaker {
  bool enabled = true;
  uint32_t window_ms = 30000;
  uint32_t min_requests = 20;        // in the window, before the rate is judged
  double error_rate = 0.2;           // 0..1: failures / routed reads over the window
  double mismatch_rate = 0.05;       // 0..1: shadow mismatches / shadow reads (issue 5)
  uint32_t cooldown_ms = 30000;      // open for this long, then half-open
  uint32_t half_open_requests = 5;   // successes in a row that close it again
};

// Shadow reads (issue 5): a sampled read served by the primary also runs on the other target, off
// the client's path, and the two answers are compared (policy/shadow/result_digest.h).
struct Shadow {
  double sample_rate = 0;              // 0..1 of eligible reads; a rule's shadow_sample_rate wins
  double max_per_second = 0;           // shadow reads started per second, whole process; 0 = no cap
  uint32_t statement_timeout_ms = 5000;  // longest wait for the other target's answer
  std::string mismatch_log;            // JSON lines file of mismatches; "" = structured log only
  bool redact_values = false;          // rows in the mismatch log show "<redacted>" values
  std::vector<std::string> ignore_columns;  // column names left out of every comparison
  std::optional<int> float_significant_digits;  // 1..17: floats compare rounded to this many digits
  std::optional<double> float_tolerance;  // > 0: floats equal within this absolute difference
  bool ignore_column_order = false;       // columns matched by name, not position
  // On a mismatch, run the read again on both targets after this delay and classify it persistent
  // or transient (pgtandem_shadow_rechecks_total); 0 = no recheck.
  uint32_t recheck_delay_ms = 0;
};

// Client authentication (issue 6): who checks the client's password.
struct Auth {
  // "relay": the primary authenticates the client (the startup packet and the exchange are relayed
  // byte for byte). "file": pgtandem authenticates the client itself against `file`, then logs in
  // to the primary as that user with the password from mirror.credentials_file.
  std::string mode = "relay";
  // PgBouncer auth_file format ("user" "secret" per line, config/userlist.h); required in file mode.
  std::string file;
  std::string method = "scram-sha-256";  // what pgtandem asks the client for: scram-sha-256 | md5
  bool file_mode() const { return mode == "file"; }
};

struct Log {
  std::string level = "info";     // debug | info | warn | error
  std::string format = "logfmt";  // logfmt | json
  bool statements = false;        // one info line per client request (statement cut at 1 KB)
};

// A coordinated cutover (issue 14, docs/cutover.md): where replicas agree, and the default gates.
// POST /cutover's query parameters override the thresholds for one call.
struct Cutover {
  // The control connection's user: this, else $PGTANDEM_CONTROL_USER, else [classifier]
  // catalog_user, else $PGUSER. Its password comes from [mirror] credentials_file.
  std::string control_user;
  std::string control_database = "postgres";  // $PGTANDEM_CONTROL_DATABASE overrides an unset one
  uint32_t pause_timeout_ms = 5000;  // in-flight transactions and acks must finish within it
  uint64_t max_mirror_lag = 1000;    // mirror units assigned and not yet applied, at most
  uint64_t max_queue_bytes = 16u << 20;
  uint64_t max_shadow_mismatches = 0;  // in the last shadow_window_s
  uint32_t shadow_window_s = 300;
  // The last `pgtandem verify` this replica heard of must be clean and at most this old; 0 turns
  // the gate off (a verify run's report reaches the proxy through its admin API).
  uint32_t verify_max_age_s = 0;
};

// The migration commands (issue 13: preflight, backfill, verify, repair; docs/migration.md). Their
// command-line flags override these. Not read by the proxy itself.
struct Migrate {
  std::string user;    // "": [classifier] catalog_user, else $PGUSER
  std::string dbname;  // "": [classifier] catalog_database, else $PGDATABASE, else the user name
  uint32_t jobs = 2;   // connections pairs (tables, or ranges of one table) working at once
  uint64_t chunk_rows = 10000;       // rows per chunk (backfill's copy, verify's hashes)
  uint64_t chunk_memory = 64u << 20;  // bytes of a chunk held in memory; beyond, streamed
  uint64_t max_rate = 0;             // rows/s over all jobs; 0 = unlimited
  uint32_t commit_grace_ms = 50;     // docs/migration.md, "the answer still on its way"
  uint32_t watermark_timeout_ms = 60000;
  uint32_t recheck_delay_ms = 1000;  // verify: pause before a differing chunk is checked again
  // Backfill (docs/migration.md): "snapshot" copies whole tables from one exported snapshot of
  // the primary under the mirror fence; "chunked" copies key-ordered chunks under row locks and
  // the mirror barrier; "auto": snapshot where every pgtandem offers the fence, else chunked.
  std::string backfill_mode = "auto";
  uint32_t fence_lease_ms = 15000;  // snapshot backfill: the fence ends this long after a last renew
  // HOST:PORT of every running pgtandem's admin listener (the mirror barrier, progress reports,
  // clearing marks). Empty: this config's own [admin] listener.
  std::vector<std::string> admins;
  // Send [admin] token (or token_file) to those endpoints: progress reports and the clears after
  // a clean verify need it. false: progress stays local, marks are not cleared.
  bool use_admin_token = true;
  // Checkpoints, reports, progress and the audit log. Relative paths (and the default, "": the
  // top-level state_dir itself) are resolved against state_dir when loaded: always absolute here.
  std::string state_dir;
};

struct Config {
  std::vector<ListenAddress> listen = {{"127.0.0.1", 6432}};  // at least one
  std::string unix_socket_dir;  // optional: also listen on <dir>/.s.PGSQL.<first listen port>
  uint32_t workers = 0;         // 0 = half the cores, at least one (docs/configuration.md)
  // The relay's I/O (issue 17; docs/design.md 4.1): "uring" (a per-worker io_uring carries the
  // pumps' socket I/O of plain TCP sessions), "epoll" (Asio's reactor), or "auto": uring where
  // the kernel and its seccomp profile allow io_uring, else epoll. Restart only.
  std::string io_backend = "auto";
  std::string primary = "old";  // name of the target that is the source of truth
  // Where pgtandem keeps its state (mirror journal, crash-window marker, needs-repair marks):
  // absolute; the packaging convention (systemd StateDirectory=pgtandem, Debian /var/lib/<pkg>) by
  // default. Only used (and required writable, checked at start) when mirroring is on.
  std::string state_dir = "/var/lib/pgtandem";
  std::vector<Target> targets;  // exactly "old" and "new"
  bool mirror_writes = false;         // apply the primary's writes on the other target too
  Limits limits;
  Mirror mirror;
  Classifier classifier;
  Routing routing;
  std::vector<Route> routes;
  Breaker breaker;
  Shadow shadow;
  Tls tls;
  Admin admin;
  Shutdown shutdown;
  Auth auth;
  Log log;
  Cutover cutover;
  Migrate migrate;

  const Target* find_target(const std::string& name) const {
    for (const auto& t : targets)
      if (t.name == name) return &t;
    return nullptr;
  }
  const Target& primary_target() const { return *find_target(primary); }
  const Target& secondary_target() const { return *find_target(primary == "old" ? "new" : "old"); }
};

struct Error {
  std::string file;
  uint32_t line = 0;    // 1-based; 0 when not tied to a place in the file
  uint32_t column = 0;  // 1-based
  std::string message;
  std::string to_string() const;  // "file:line:column: message", or "file: message" if line == 0
};

struct LoadResult {
  std::optional<Config> config;  // set on success
  std::vector<Error> errors;     // every problem found, in file order
  std::string source_hash;       // config_hash() of the bytes that were parsed ("" if unreadable)
  bool ok() const { return config.has_value(); }
};

// Parse and validate. Never throws. Unknown keys and bad values are errors with line and column.
LoadResult load_file(const std::string& path);
LoadResult load_string(std::string_view toml, const std::string& source_name = "<string>");

// Stable 64-bit FNV-1a of the file's bytes as 16 lowercase hex digits, for the audit log.
std::string config_hash(std::string_view file_contents);

// `path` if absolute, else `state_dir`/`path` (how [mirror] journal_path is resolved).
std::string resolve_state_path(const std::string& state_dir, const std::string& path);

// "host:port", with IPv6 hosts in brackets ("[::1]:6432"), for logs and messages.
std::string format_host_port(std::string_view host, uint16_t port);

}  // namespace pgtandem::config
