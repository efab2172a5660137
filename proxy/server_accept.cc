// Accepting clients: the listeners' loops, the worker a connection goes to, and the refusal a
// client gets when pgtandem is full (FATAL 53300, after its startup packet, as the server does).
// The rest of the process is proxy/server.cc.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <string>
#include <string_view>

#include "protocol/errors.h"
#include "protocol/startup.h"
#include "proxy/net/upstream.h"
#include "proxy/server_impl.h"
#include "proxy/telemetry/log.h"
#include "proxy/worker.h"

namespace pgtandem::proxy {

namespace {

using namespace asio::experimental::awaitable_operators;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

std::string fatal_too_many(std::string_view message) {
  std::string out;
  protocol::encode_error_response(out, protocol::Severity::kFatal, protocol::sqlstate::kTooManyConnections, message);
  return out;
}

// Reads startup packets until the client's StartupMessage (or CancelRequest) has arrived,
// answering SSLRequest/GSSENCRequest with 'N' on the way; false on EOF or a malformed packet.
asio::awaitable<bool> read_startup(Socket& socket) {
  std::string in;
  char tmp[1024];
  for (;;) {
    while (in.size() < 8) {
      auto [ec, n] = co_await socket.async_read_some(asio::buffer(tmp), kNoThrow);
      if (ec) co_return false;
      in.append(tmp, n);
    }
    auto frame = protocol::decode_startup_frame(in);
    if (frame.status != protocol::Status::kComplete) co_return false;
    while (in.size() < frame.length) {
      auto [ec, n] = co_await socket.async_read_some(asio::buffer(tmp), kNoThrow);
      if (ec) co_return false;
      in.append(tmp, n);
    }
    if (frame.code != protocol::kSslRequestCode && frame.code != protocol::kGssEncRequestCode) {
      co_return true;
    }
    static const char kNo = 'N';
    auto [ec, n] = co_await asio::async_write(socket, asio::buffer(&kNo, 1), kNoThrow);
    if (ec) co_return false;
    in.erase(0, frame.length);
  }
}

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  co_await timer.async_wait(kNoThrow);
}

// Refuses a connection the way the server does when it is full: it answers an SSLRequest, reads
// the startup packet, then sends FATAL 53300. Answering before the startup packet would make
// libpq (sslmode=prefer) report "server sent an error response during SSL exchange" instead of
// the reason. Bounded to a second, so refused clients cannot hold resources.
asio::awaitable<void> refuse(Socket socket, std::string bytes) {
  auto r = co_await (read_startup(socket) || sleep_for(std::chrono::seconds(1)));
  if (r.index() == 0 && std::get<0>(r)) {
    co_await asio::async_write(socket, asio::buffer(bytes), kNoThrow);
  }
  boost::system::error_code ec;
  socket.shutdown(asio::socket_base::shutdown_send, ec);
  socket.close(ec);
}

}  // namespace

Worker& Server::Impl::pick_worker(Worker& self) {
  // SO_REUSEPORT spreads connections by a hash of the 4-tuple, which leaves workers unevenly
  // loaded with few clients (8 pgbench clients on 2 workers often split 6/2). A connection stays
  // with the worker that accepted it unless another one has at least two fewer sessions.
  Worker* best = &self;
  uint32_t best_load = self.sessions().load(std::memory_order_relaxed);
  for (Worker& w : workers) {
    uint32_t load = w.sessions().load(std::memory_order_relaxed);
    if (load + 1 < best_load) {
      best = &w;
      best_load = load;
    }
  }
  return *best;
}

asio::awaitable<void> Server::Impl::accept_loop(Worker& worker, Acceptor& acceptor, bool tcp) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(kNoThrow);
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      // EMFILE and friends: back off briefly instead of spinning.
      log::warn("accept failed", {{"error", ec.message()}});
      asio::steady_timer t(worker.io(), std::chrono::milliseconds(50));
      co_await t.async_wait(kNoThrow);
      continue;
    }
    const auto& limits = config.limits;
    if (state.clients.load(std::memory_order_relaxed) >= limits.max_client_connections) {
      metrics->rejected(RejectReason::kTooManyClients);
      asio::co_spawn(worker.io(), refuse(Socket(std::move(socket)), fatal_too_many("sorry, too many clients already")),
                     asio::detached);
      continue;
    }
    if (state.unauthenticated.load(std::memory_order_relaxed) >= limits.max_unauthenticated) {
      metrics->rejected(RejectReason::kTooManyUnauthenticated);
      asio::co_spawn(worker.io(),
                     refuse(Socket(std::move(socket)),
                            fatal_too_many("sorry, too many clients already: pgtandem is at "
                                           "max_unauthenticated connections still logging in")),
                     asio::detached);
      continue;
    }
    state.clients.fetch_add(1, std::memory_order_relaxed);
    state.unauthenticated.fetch_add(1, std::memory_order_relaxed);
    if (tcp) set_tcp_options(socket);
    Worker& target = pick_worker(worker);
    const int family = acceptor.local_endpoint().protocol().family();
    target.adopt(family, tcp ? IPPROTO_TCP : 0, socket.release());
  }
}

}  // namespace pgtandem::proxy
