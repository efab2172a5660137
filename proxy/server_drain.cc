// Readiness and the graceful drain: the probes that say whether each target is reachable (/ready
// and the metrics), and what SIGTERM starts: no new connections, sessions closing at their next
// idle boundary, then the mirror links applying what they hold, within drain_timeout_ms. The
// rest of the process is proxy/server.cc.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <unistd.h>

#include <chrono>
#include <string>

#include "proxy/net/upstream.h"
#include "proxy/server_impl.h"
#include "proxy/telemetry/log.h"
#include "proxy/worker.h"

namespace pgtandem::proxy {

namespace {
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
}  // namespace

asio::awaitable<void> Server::Impl::probe_loop() {
  // Readiness without a probe per request: every target is connected to (TCP only, nothing is
  // sent, so the server logs nothing) about once a second with a one-second timeout.
  constexpr auto kPeriod = std::chrono::milliseconds(1000);
  constexpr auto kTimeout = std::chrono::milliseconds(1000);
  asio::steady_timer timer(main_io);
  for (;;) {
    for (size_t i = 0; i < state.targets.size() && i < kMaxTargets; ++i) {
      const uint64_t failures = metrics->upstream_connect_failures(i);
      Socket socket(main_io);
      const boost::system::error_code ec = co_await connect_target(socket, state.targets[i], kTimeout);
      boost::system::error_code ignored;
      socket.close(ignored);
      if (!ec) failures_at_probe[i].store(failures, std::memory_order_relaxed);
      const int before = state.health.reachable[i].exchange(ec ? 0 : 1, std::memory_order_relaxed);
      if (before != (ec ? 0 : 1) && before != -1) {
        log::write(ec ? log::Level::kWarn : log::Level::kInfo,
                   ec ? "target unreachable" : "target reachable",
                   {{"target", state.targets[i].name}, {"error", ec ? ec.message() : ""}});
      }
    }
    timer.expires_after(kPeriod);
    auto [ec] = co_await timer.async_wait(kNoThrow);
    if (ec) co_return;
  }
}

bool Server::Impl::target_up(size_t target) const {
  if (target >= kMaxTargets) return false;
  if (state.health.reachable[target].load(std::memory_order_relaxed) != 1) return false;
  // A session that failed to connect since the last successful probe: down until the next one.
  return metrics->upstream_connect_failures(target) ==
         failures_at_probe[target].load(std::memory_order_relaxed);
}

bool Server::Impl::ready(std::string* why) const {
  if (state.control.draining.load(std::memory_order_relaxed)) {
    *why = "draining (shutting down)";
    return false;
  }
  auto snap = state.snapshot.load(std::memory_order_acquire);
  if (!snap) {
    *why = "no config loaded";
    return false;
  }
  const size_t primary = snap->primary;
  if (state.health.reachable[primary].load(std::memory_order_relaxed) == -1) {
    *why = "primary " + state.targets[primary].name + " not checked yet";
    return false;
  }
  if (!target_up(primary)) {
    *why = "primary " + state.targets[primary].name + " (" + state.targets[primary].description +
           ") is unreachable";
    return false;
  }
  return true;
}

void Server::Impl::begin_drain() {
  drain_started = true;
  auto snap = state.snapshot.load(std::memory_order_acquire);
  const uint32_t timeout_ms = snap ? snap->config->shutdown.drain_timeout_ms
                                   : config.shutdown.drain_timeout_ms;
  const auto start = std::chrono::steady_clock::now();
  log::info("draining: no new connections, sessions close at their next idle boundary",
            {{"sessions", std::to_string(state.clients.load())},
             {"drain_timeout_ms", std::to_string(timeout_ms)}});
  // Set before the sessions are woken: a woken session must see it.
  state.control.draining.store(true, std::memory_order_seq_cst);
  for (Acceptor& a : acceptors) {
    // Each acceptor belongs to its worker's thread.
    asio::post(a.get_executor(), [&a] {
      boost::system::error_code ignored;
      a.close(ignored);
    });
  }
  if (!unix_socket_path.empty()) {
    ::unlink(unix_socket_path.c_str());
    unix_socket_path.clear();
  }
  for (Worker& w : workers) asio::post(w.io(), [&w] { w.wake_for_drain(); });
  asio::co_spawn(main_io, drain_wait(start + std::chrono::milliseconds(timeout_ms)),
                 asio::detached);
}

asio::awaitable<void> Server::Impl::drain_wait(std::chrono::steady_clock::time_point deadline) {
  using std::chrono::steady_clock;
  const auto start = steady_clock::now();
  asio::steady_timer timer(main_io);
  auto elapsed = [&] {
    return std::chrono::duration<double>(steady_clock::now() - start).count();
  };
  // Sessions first: each leaves at its next idle boundary (a late wake-up is harmless).
  while (state.clients.load(std::memory_order_relaxed) > 0 && steady_clock::now() < deadline) {
    for (Worker& w : workers) asio::post(w.io(), [&w] { w.wake_for_drain(); });
    timer.expires_after(std::chrono::milliseconds(50));
    co_await timer.async_wait(kNoThrow);
    metrics->set_drain_duration(elapsed());
  }
  const uint32_t left = state.clients.load(std::memory_order_relaxed);
  // Then the mirror: links apply what their sessions queued, within the same deadline; what is
  // left then is journaled by stop().
  bool mirror_drained = true;
  if (state.mirror.journal) {
    for (;;) {
      // (drained() is an atomic of each link: read here, on the main thread.)
      mirror_drained = true;
      for (Worker& w : workers) mirror_drained = mirror_drained && w.mirror_links_drained();
      for (Worker& w : mirror_homes) mirror_drained = mirror_drained && w.mirror_links_drained();
      if (mirror_drained || steady_clock::now() >= deadline) break;
      timer.expires_after(std::chrono::milliseconds(50));
      co_await timer.async_wait(kNoThrow);
    }
  }
  metrics->set_drain_duration(elapsed());
  log::info("drain finished", {{"seconds", format_double(elapsed())},
                               {"sessions_left", std::to_string(left)},
                               {"sessions_closed",
                                std::to_string(metrics->drain_sessions_closed())},
                               {"mirror", mirror_drained ? "drained" : "journaling the rest"}});
  drain_finished = true;
  main_io.stop();
}

}  // namespace pgtandem::proxy
