// Server::Impl: the process's parts side by side (workers, listeners, admin, reloader, catch-up,
// fence, cutover). Shared by the files that implement it: proxy/server.cc (start, stop),
// server_accept.cc, server_mirror.cc, server_drain.cc, proxy/control/status_json.cc (/status) and
// proxy/control/admin_actions.cc (the admin API's actions). Heavy (Asio): included by those only.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "policy/migrate/run_board.h"
#include "proxy/control/admin_http.h"
#include "proxy/control/cutover.h"
#include "proxy/control/reload.h"
#include "proxy/mirror/catchup.h"
#include "proxy/mirror/mirror_fence.h"
#include "proxy/server.h"
#include "proxy/telemetry/metrics.h"
#include "proxy/worker.h"

namespace pgtandem::proxy {

using Acceptor = asio::basic_socket_acceptor<asio::generic::stream_protocol>;

// How /status and the admin replies name a breaker's state and a reload's outcome.
inline std::string_view breaker_name(int code) {
  return code == 1 ? "open" : code == 2 ? "half_open" : "closed";
}
inline std::string_view outcome_name(ConfigReloadOutcome o) {
  return o == ConfigReloadOutcome::kInvalid ? "rejected" : to_string(o);
}
inline std::string format_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", v);
  return buf;
}

struct Server::Impl {
  config::Config config;
  ServerOptions options;
  // The main thread's loop (run_until_signal): signals and config reloads. Declared before what
  // has handlers on it.
  asio::io_context main_io{1};
  std::unique_ptr<asio::signal_set> signals;
  ServerState state;
  std::unique_ptr<Metrics> metrics;
  // Declared before `workers`, so destroyed after them: a session's coroutine, destroyed with its
  // worker's io_context, may hold the last reference to a link whose timers are on a home's.
  std::list<Worker> mirror_homes;  // [mirror] link_threads: the links' threads
  std::list<Worker> workers;
  std::list<Acceptor> acceptors;
  std::unique_ptr<AdminServer> admin;
  std::string unix_socket_path;
  std::unique_ptr<Reloader> reloader;
  std::unique_ptr<Catchup> catchup;  // automatic catch-up of the mirror journal
  std::unique_ptr<MirrorFence> fence;  // a snapshot backfill's fence (needs catch-up)
  std::unique_ptr<Cutover> cutover;  // issue 14; null when mirroring was off at start
  bool stopped = false;
  std::string admin_token;  // [admin] token, or token_file's contents (read at start)
  // Issue 13: the migration commands' progress, as they POST it (/migrate/progress).
  mutable std::mutex migrate_mu;
  policy::migrate::RunBoard migrate_board;
  static int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  std::chrono::system_clock::time_point started_at = std::chrono::system_clock::now();
  std::chrono::steady_clock::time_point started_steady = std::chrono::steady_clock::now();
  // Connect failures counted by sessions at the last successful probe of each target: a higher
  // count means a session failed to connect since, and the target counts as down until the next
  // successful probe.
  std::atomic<uint64_t> failures_at_probe[kMaxTargets] = {};
  bool drain_started = false;   // main thread
  bool drain_finished = false;  // main thread: the drain ran to its end (or its deadline)

  asio::awaitable<void> accept_loop(Worker& worker, Acceptor& acceptor, bool tcp);
  asio::awaitable<void> probe_loop();
  asio::awaitable<void> drain_wait(std::chrono::steady_clock::time_point deadline);
  void begin_drain();
  bool target_up(size_t target) const;
  bool ready(std::string* why) const;
  std::string status_json() const;
  AdminReply reload_via_admin();
  AdminReply cutover_via_admin(std::string_view query);
  bool set_primary_on_main(const std::string& primary, std::string* error);
  void audit_cutover(const std::string& json);
  AdminReply breaker_reset(std::string_view query);
  void reload_client_tls();
  bool open_mirror(const config::Config& cfg, std::string* error);
  void watch_mirror_safety();
  AdminReply mirror_clear(std::string_view path, std::string_view body);
  Worker& pick_worker(Worker& self);
};

}  // namespace pgtandem::proxy
