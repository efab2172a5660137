// Prometheus metrics. Rare events (sessions, connect failures, rejections) are prometheus-cpp
// counters; per-message counters and latency live in per-worker WorkerStats and are aggregated
// only when scraped, so the data path never touches a shared cache line.
#pragma once

#include <cstdint>
#include <memory>
#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/telemetry/stats.h"
#include "policy/route/route_safety.h"

namespace prometheus {
class Counter;
class Gauge;
class Registry;
}  // namespace prometheus

namespace pgtandem::proxy {

enum class RejectReason { kStartupTimeout, kTooManyUnauthenticated, kTooManyClients };
enum class ProtocolErrorKind { kClientFraming, kClientStartup, kBackendFraming };
// skipped_primary_only: a request calling pg_terminate_backend() and the like, which act on the
// server they run on, is never mirrored (nor journaled: a replay would run the call).
// kStopped: not mirrored because mirroring stopped at the journal's limit (journal_full = "stop").
enum class MirrorOutcome {
  kApplied,
  kFailed,
  kJournaled,
  kSkippedRollback,
  kSkippedPrimaryOnly,
  kStopped
};

// Config reloads (issue 4): applied, rejected (parse or validation errors), or the file's bytes
// were those already running.
enum class ConfigReloadOutcome { kApplied, kInvalid, kUnchanged };
// Why a routed read was retried on the primary: the other target could not be reached (connect,
// login), it answered with a connection-class error, or it was known to be down (breaker open,
// target marked down) when the read was about to go there.
enum class RouteFallbackReason { kConnect, kError, kUnavailable };
// Exported as 0, 1, 2.
enum class BreakerState { kClosed = 0, kOpen = 1, kHalfOpen = 2 };
// A session's connection to the non-primary target for routed reads: ok, TCP connect failed or
// timed out, or login (authentication, replayed session state) failed.
enum class SecondaryConnectOutcome { kOk, kConnectFailed, kTimeout, kLoginFailed };

// A shadow read (issue 5): both answers compared equal or not; skipped (not run: noise control,
// the other target's connection busy, a request or row too large...); dropped (over the rate limit,
// the other target unreachable, timed out or failed mid-answer).
enum class ShadowOutcome { kMatch, kMismatch, kSkipped, kDropped };

// Route decisions are counted per rule index of the snapshot that decided; rules from this index
// on share the label rule="other".
inline constexpr size_t kMaxRouteRules = 256;

class Metrics {
 public:
  // target_names: index -> config name ("old", "new"); the same index is used in WorkerStats.
  explicit Metrics(std::vector<std::string> target_names);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  void add_worker(const WorkerStats* stats);  // before serving starts

  void session_started();
  void client_connected();
  void client_disconnected();
  void upstream_connect_failed(size_t target);
  void rejected(RejectReason reason);
  void protocol_error(ProtocolErrorKind kind);
  void cancel_request(bool known_session);
  // A session at a primary flip: moved, or closed because it could not be moved.
  void primary_flip(bool moved);
  // A cutover (issue 14) ended: result ok | aborted | refused | unchanged | error; pause_seconds
  // < 0 when it never paused. Off the hot path (the admin thread).
  void cutover(const std::string& result, double pause_seconds);
  void set_cutover_epoch(int64_t epoch);
  // A read a rule sent to the other target stayed on the primary (policy/route/route_safety.h).
  void route_kept(policy::KeptReason reason);

  void mirror_write(MirrorOutcome outcome);
  // kind: row_count | command | error_on_mirror | error_on_primary | error_code | statements.
  // unit_bytes: the diverging mirror unit's frontend messages (its tables decide the backfill
  // attribution below; {} = unknown).
  void mirror_divergence(std::string_view kind, std::string_view unit_bytes = {});
  // Issue 13: whether a backfill has not finished the tables of a diverging unit yet
  // (policy::migrate::RunBoard, as the commands report it; unit_bytes {}: any table). While it
  // says so, row_count divergences of that unit, and every error_on_mirror divergence (a foreign
  // key's parent row not copied yet is in a table the statement does not name), are counted in
  // pgtandem_mirror_divergences_backfill_pending_total instead. Set before serving starts; called
  // on the divergence path only (rare), from any worker.
  void set_backfill_pending(std::function<bool(std::string_view unit_bytes)> pending);
  // Divergences counted so far: real ones, and those put down to a backfill in progress.
  void mirror_divergences(uint64_t* real, uint64_t* backfill_pending) const;
  void mirror_nondeterministic();
  // Committed transactions applied on the mirror as one request (policy/mirror/mirror_batch.h).
  void mirror_coalesced(size_t transactions);
  // A mirrored write waited for other sessions' earlier ones (commit order): `in_time` false
  // when it stopped waiting and was applied anyway.
  void mirror_order_wait(bool in_time);
  // Read at scrape time: the queue gauge and the journal's size.
  // Samples computed at scrape time by another part of the proxy (the mirror backlog and
  // catch-up): consecutive samples with the same name form one family.
  struct Sample {
    std::string name;
    std::string help;
    bool counter = false;
    std::string label_key;  // empty: no label
    std::string label_value;
    double value = 0;
  };
  void set_extra_source(std::function<std::vector<Sample>()> source);
  void set_mirror_sources(const std::atomic<int64_t>* queue_bytes,
                          std::function<uint64_t()> journal_bytes);
  // A gauge read at scrape time (state that is not a counter of events: the journal's limit, the
  // mirror's stop, needs-repair marks). Adding a name twice replaces the first source.
  void add_gauge(std::string name, std::string help, std::function<double()> value);

  // --- Config reloads (called by the reloader, on one thread) ---
  void config_reload(ConfigReloadOutcome outcome);
  // pgtandem_config_generation and pgtandem_config_info{hash} (the previous hash's series goes).
  void set_config(uint64_t generation, const std::string& hash);
  // The rule names of snapshot `generation` (index = RuleSet rule index), before that snapshot is
  // published: route_decision() for that generation is labelled with them.
  void set_route_rules(uint64_t generation, std::vector<std::string> rule_names);

  // --- Read routing (called by sessions) ---
  // Hot path, once per routed-or-not read: no lock, no allocation, no shared cache line. Call on
  // worker `worker`'s own thread (worker = the order of add_worker(), i.e. Worker::index()).
  // generation: ConfigSnapshot::generation of the snapshot whose rules decided; rule:
  // RouteDecision::rule (-1 = no rule matched: rule="default"); target: index into
  // ServerState::targets where the read went.
  void route_decision(size_t worker, uint64_t generation, int rule, size_t target) noexcept;
  // A routed read retried on the primary; target: the one that failed.
  void route_fallback(size_t target, RouteFallbackReason reason);
  void set_breaker_state(size_t target, BreakerState state);
  void breaker_trip(size_t target);  // closed or half-open -> open
  void route_secondary_connect(size_t target, SecondaryConnectOutcome outcome);

  // --- Shadow reads (issue 5; rare next to the data path: sampled reads only) ---
  void shadow_read(ShadowOutcome outcome);
  // A skipped shadow read also counts its reason (and shadow_read(kSkipped)).
  void shadow_skip(std::string_view reason);
  // kind: policy::to_string(MismatchKind) (also counts shadow_read(kMismatch)).
  void shadow_mismatch(std::string_view kind);
  // A sampled read that could not run or finish (also counts shadow_read(kDropped)): rate_limit,
  // queue_full, busy, connect, timeout, connection_lost, link_unavailable, session_closed.
  void shadow_drop(std::string_view reason);
  // label: the fingerprint's MismatchTable label (bounded: the table's capacity + "other").
  void shadow_mismatch_fingerprint(std::string_view label);
  // result: persistent | transient | failed (the recheck could not run both sides).
  void shadow_recheck(std::string_view result);

  // --- Graceful shutdown (issue 6) ---
  void drain_session_closed();          // a session closed at an idle boundary by a drain
  void set_drain_duration(double seconds);

  // --- Read back for the admin /status (scrape-time cost; never on the data path) ---
  struct RuleCount {
    std::string rule;
    std::string target;
    uint64_t count = 0;
  };
  std::vector<RuleCount> route_counts() const;
  // pgtandem_mirror_lag_seconds: number of writes applied and the sum of their lags.
  void mirror_lag(uint64_t* count, double* sum_seconds) const;
  uint64_t upstream_connect_failures(size_t target) const;
  uint64_t drain_sessions_closed() const;
  // --- Client authentication by pgtandem ([auth] mode = "file"; once per login) ---
  // method: scram-sha-256 | md5; outcome: ok | failed | unknown_user | error.
  void client_auth(std::string_view method, std::string_view outcome);

  std::string serialize() const;  // Prometheus text exposition format 0.0.4

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgtandem::proxy
