// A worker: one thread, one io_context, its own listeners, and the sessions it serves. Nothing on
// the data path is shared between workers. (The io_context's concurrency hint 1 is an optimisation
// hint only: Asio keeps its scheduler and reactor locks, which posts from other threads and a
// mirror link's socket moving between a worker and its home rely on; docs/design.md 4.2.)
#pragma once

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "config/config.h"
#include "config/pgpass.h"
#include "config/userlist.h"
#include "protocol/framing.h"
#include "proxy/auth/auth_shared.h"
#include "proxy/control/control_flags.h"
#include "proxy/mirror/mirror_shared.h"
#include "proxy/net/target_health.h"
#include "proxy/shadow/shadow_shared.h"
#include "proxy/net/cancel_registry.h"
#include "proxy/telemetry/metrics.h"
#include "policy/mirror/mirror_order.h"
#include "proxy/telemetry/stats.h"
#include "proxy/net/stream.h"
#include "proxy/net/pump_buffer.h"
#include "policy/sql/classifier.h"
#include "policy/sql/classifier_cache.h"
#include "policy/shadow/mismatch_table.h"
#include "policy/route/route_rules.h"

namespace pgtandem::proxy {

namespace asio = boost::asio;
// Plain or TLS (proxy/net/stream.h); RawSocket is the socket itself.
using Socket = Stream;
using Endpoint = asio::generic::stream_protocol::endpoint;

struct ClientTls;
struct TargetTls;

struct TargetEndpoint {
  std::string name;
  std::string description;  // "127.0.0.1:5432" or the socket path, for messages
  Endpoint endpoint;
  bool tcp = true;
  std::shared_ptr<const TargetTls> tls;  // null: never TLS (sslmode disable, or a Unix socket)
};

class Worker;
class Journal;
class UringRelay;
class MirrorLink;

// What a hot reload swaps (issue 4): the validated config and what is compiled from it. Immutable;
// sessions hold a shared_ptr and pick up a newer one at a transaction boundary (they compare
// ServerState::snapshot_generation, a relaxed load, before touching the atomic shared_ptr).
struct ConfigSnapshot {
  std::shared_ptr<const config::Config> config;
  std::shared_ptr<const policy::RuleSet> rules;
  uint64_t generation = 0;  // 1 for the config pgtandem started with, +1 per applied reload
  std::string hash;         // config::config_hash() of the file's bytes
  size_t primary = 0;       // index into ServerState::targets of config->primary
};

// State shared by all workers. Read-mostly; the counters are touched per connection, not per message.
struct ServerState {
  // The config pgtandem started with. Restart-only settings (listen, targets, workers, admin,
  // limits) are read from here; everything a reload may change is read from `snapshot`.
  std::shared_ptr<const config::Config> config;
  std::atomic<std::shared_ptr<const ConfigSnapshot>> snapshot;
  std::atomic<uint64_t> snapshot_generation{0};
  // The relay's I/O as resolved at start (io_backend "auto" becomes uring or epoll): true when
  // the workers run the liburing relay.
  bool uring_relay = false;
  std::vector<TargetEndpoint> targets;  // index = target id (also the WorkerStats index)
  size_t primary = 0;
  protocol::Limits limits;
  Metrics* metrics = nullptr;
  CancelRegistry cancels;
  std::atomic<uint32_t> unauthenticated{0};
  std::atomic<uint32_t> clients{0};
  std::vector<Worker*> workers;

  std::string process_tag;  // distinguishes this process in session ids
  std::atomic<uint64_t> next_session{1};

  // Each wing's shared state, side by side.
  MirrorShared mirror;    // proxy/mirror/mirror_shared.h (config.mirror_writes)
  AuthShared auth;        // proxy/auth/auth_shared.h: userlist, client TLS
  TargetHealth health;    // proxy/net/target_health.h: down marks, reachability, breakers
  ShadowShared shadow;    // proxy/shadow/shadow_shared.h: mismatches (issue 5)
  ControlFlags control;   // proxy/control/control_flags.h: draining, [log] statements

  ServerState();
  ~ServerState();
};

class Worker {
 public:
  Worker(size_t index, ServerState& state);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  size_t index() const { return index_; }
  asio::io_context& io() { return io_; }
  ServerState& state() { return state_; }
  WorkerStats& stats() { return stats_; }
  // Statement classifications are cached per worker: no lock, and hot statements stay hot.
  policy::ClassificationCache& classification_cache() { return classification_cache_; }

  // The worker's ring when io_backend = "uring" (proxy/net/uring_relay.h), else null; set on the
  // worker thread before it runs anything.
  UringRelay* uring() { return uring_.get(); }
  // The pumps' buffers (proxy/net/pump_buffer.h); worker thread only.
  BufferPool& frontend_buffers() { return frontend_buffers_; }
  BufferPool& backend_buffers() { return backend_buffers_; }

  // Sessions served by this worker now; read by other workers' acceptors to balance load.
  std::atomic<uint32_t>& sessions() { return sessions_; }

  // Mirror links started on this worker (weak: a link lives as long as its queue). On stop, what
  // they have not applied is journaled instead of dropped. Any thread (a link is registered with
  // its home, which may be another thread's).
  void add_mirror_link(const std::shared_ptr<MirrorLink>& link);
  void journal_pending_mirror_writes();

  // Sessions that may be woken for a graceful shutdown: each registers the signal bound to its
  // wait for the client's next request (worker thread only). wake_for_drain() cancels those
  // waits; a session then sees ServerState::draining and leaves if it is idle.
  void register_drain(asio::cancellation_signal* signal) { drain_signals_.insert(signal); }
  void unregister_drain(asio::cancellation_signal* signal) { drain_signals_.erase(signal); }
  void wake_for_drain();
  // Every mirror link started here has applied its queue (or is gone); any thread.
  bool mirror_links_drained();
  // After every thread stopped: closes the links' sockets, which may be registered with another
  // worker's io_context (a link lent to a session there) that is destroyed first.
  void close_mirror_links();

  // Mirror link threads ([mirror] link_threads, docs/design.md 4.2): a worker in the role of a
  // home for mirror links runs no sessions and no ring, at nice `nice` (set on its thread). A
  // session worker's links run on its home (itself when there is none).
  void make_mirror_home(int nice) {
    mirror_home_role_ = true;
    nice_ = nice;
  }
  bool is_mirror_home() const { return mirror_home_role_; }
  void set_mirror_home(Worker* home) { mirror_home_ = home; }
  Worker& mirror_home() { return mirror_home_ != nullptr ? *mirror_home_ : *this; }

  // Starts serving `socket` (created on any io_context) on this worker's thread.
  void adopt(int protocol_family, int protocol, int fd);

  void start();
  void stop();
  void join();

 private:
  size_t index_;
  ServerState& state_;
  // Before io_: destroyed after it (sessions still in io_'s handlers release their legs and
  // buffers into them).
  std::unique_ptr<UringRelay> uring_;
  BufferPool frontend_buffers_{kFrontendBufferSize, kPoolMaxIdle};
  BufferPool backend_buffers_{kBackendBufferSize, kPoolMaxIdle};
  asio::io_context io_{1};
  WorkerStats stats_;
  policy::ClassificationCache classification_cache_;
  std::atomic<uint32_t> sessions_{0};
  std::mutex mirror_links_mu_;
  std::vector<std::weak_ptr<MirrorLink>> mirror_links_;  // under mirror_links_mu_
  bool mirror_home_role_ = false;
  int nice_ = 0;
  Worker* mirror_home_ = nullptr;
  std::unordered_set<asio::cancellation_signal*> drain_signals_;  // worker thread only
  std::thread thread_;
};

// A session's registration for drain wake-ups, for the session's lifetime (worker thread).
class DrainRegistration {
 public:
  DrainRegistration(Worker& worker, asio::cancellation_signal* signal)
      : worker_(worker), signal_(signal) {
    worker_.register_drain(signal_);
  }
  ~DrainRegistration() { worker_.unregister_drain(signal_); }
  DrainRegistration(const DrainRegistration&) = delete;
  DrainRegistration& operator=(const DrainRegistration&) = delete;

 private:
  Worker& worker_;
  asio::cancellation_signal* signal_;
};

}  // namespace pgtandem::proxy
