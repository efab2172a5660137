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

#include "proxy/stats.h"

namespace prometheus {
class Counter;
class Gauge;
class Registry;
}  // namespace prometheus

namespace pgtandem::proxy {

enum class RejectReason { kStartupTimeout, kTooManyUnauthenticated, kTooManyClients };
enum class ProtocolErrorKind { kClientFraming, kClientStartup, kBackendFraming };
enum class MirrorOutcome { kApplied, kFailed, kJournaled, kSkippedRollback };

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

  void mirror_write(MirrorOutcome outcome);
  // kind: row_count | command | error_on_mirror | error_on_primary | error_code | statements
  void mirror_divergence(std::string_view kind);
  void mirror_nondeterministic();
  // Read at scrape time: the queue gauge and the journal's size.
  void set_mirror_sources(const std::atomic<int64_t>* queue_bytes,
                          std::function<uint64_t()> journal_bytes);

  std::string serialize() const;  // Prometheus text exposition format 0.0.4

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pgtandem::proxy
