#include "proxy/net/upstream.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "protocol/startup.h"
#include "proxy/net/tls.h"

namespace pgtandem::proxy {

using namespace asio::experimental::awaitable_operators;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

void set_tcp_options(RawSocket& socket) {
  int one = 1;
  // TCP_NODELAY: we send whole message spans; Nagle would add a round-trip delay to small ones.
  ::setsockopt(socket.native_handle(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

asio::awaitable<boost::system::error_code> connect_target(Socket& socket,
                                                          const TargetEndpoint& target,
                                                          std::chrono::milliseconds timeout) {
  asio::steady_timer timer(co_await asio::this_coro::executor, timeout);
  auto result = co_await (socket.async_connect(target.endpoint, kNoThrow) ||
                          timer.async_wait(kNoThrow));
  if (result.index() == 1) {
    boost::system::error_code ignored;
    socket.close(ignored);
    co_return asio::error::timed_out;
  }
  auto [ec] = std::get<0>(result);
  if (ec) co_return ec;
  if (target.tcp) set_tcp_options(socket.raw());
  if (target.tls == nullptr) co_return boost::system::error_code{};

  // SSLRequest; the answer is one byte, read alone: bytes behind it before the handshake would be
  // a man in the middle's (CVE-2021-23222), and the handshake reads them as TLS, so it fails.
  std::string request;
  protocol::encode_ssl_request(request);
  char answer = 0;
  auto exchange = [&]() -> asio::awaitable<boost::system::error_code> {
    auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(request), kNoThrow);
    if (wec) co_return wec;
    auto [rec, rn] = co_await asio::async_read(socket, asio::buffer(&answer, 1), kNoThrow);
    if (rec) co_return rec;
    if (answer == 'S') co_return co_await tls_connect(socket, *target.tls);
    if (answer == 'N') {
      co_return target.tls->required ? make_error_code(TlsError::kRefusedByTarget)
                                     : boost::system::error_code{};
    }
    co_return make_error_code(TlsError::kBadAnswer);
  };
  auto tls_result = co_await (exchange() || timer.async_wait(kNoThrow));
  if (tls_result.index() == 1) {
    boost::system::error_code ignored;
    socket.close(ignored);
    co_return asio::error::timed_out;
  }
  ec = std::get<0>(tls_result);
  if (ec) {
    boost::system::error_code ignored;
    socket.close(ignored);
  }
  co_return ec;
}

std::string pgpass_host(const config::Target& target) {
  if (target.unix_socket_dir.empty()) return target.host;
  return target.unix_socket_dir == "/var/run/postgresql" ? "localhost" : target.unix_socket_dir;
}

namespace {

// The TLS context of each target (sslmode, files), read once at start.
[[gnu::noinline]] bool attach_target_tls(const config::Config& config,
                                         std::vector<TargetEndpoint>* out, std::string* error) {
  for (size_t i = 0; i < out->size() && i < config.targets.size(); ++i) {
    std::string why;
    (*out)[i].tls = make_target_tls(config.targets[i], &why);
    if (!why.empty()) {
      *error = why;
      return false;
    }
  }
  return true;
}

}  // namespace

// GCC 12 assumes the Unix-socket endpoint copied into a generic one may span a whole
// sockaddr_storage (it copies only the socket's size()): a false positive since this file grew.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overread"
bool resolve_targets(const config::Config& config, std::vector<TargetEndpoint>* out,
                     std::string* error) {
  out->clear();
  for (const auto& t : config.targets) {
    TargetEndpoint te;
    te.name = t.name;
    if (!t.unix_socket_dir.empty()) {
      std::string path = t.unix_socket_dir + "/.s.PGSQL." + std::to_string(t.port);
      te.endpoint = Endpoint(asio::local::stream_protocol::endpoint(path));
      te.description = path;
      te.tcp = false;
    } else {
      // Resolved once at startup: targets are addressed by IP in practice, and a lookup per
      // connection would put the resolver on the connect path.
      addrinfo hints{};
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      int rc = ::getaddrinfo(t.host.c_str(), std::to_string(t.port).c_str(), &hints, &res);
      if (rc != 0 || res == nullptr) {
        *error = "cannot resolve target \"" + t.name + "\" host \"" + t.host + "\": " + gai_strerror(rc);
        return false;
      }
      te.endpoint = Endpoint(res->ai_addr, res->ai_addrlen, IPPROTO_TCP);
      ::freeaddrinfo(res);
      te.description = t.host + ":" + std::to_string(t.port);
    }
    out->push_back(std::move(te));
  }
  return attach_target_tls(config, out, error);
}
#pragma GCC diagnostic pop

}  // namespace pgtandem::proxy
