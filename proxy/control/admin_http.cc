#include "proxy/control/admin_http.h"

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <chrono>
#include <exception>
#include <mutex>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <utility>

#include "proxy/telemetry/log.h"

namespace pgtandem::proxy {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kTextContentType = "text/plain; charset=utf-8";
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

Response text_response(http::status status, unsigned version, std::string body) {
  Response res{status, version};
  res.set(http::field::server, "pgtandem");
  res.set(http::field::content_type, kTextContentType);
  res.body() = std::move(body);
  return res;
}

}  // namespace

struct AdminServer::Impl {
  Impl(std::string host, uint16_t port, AdminHandlers handlers)
      : host_(std::move(host)), requested_port_(port), handlers_(std::move(handlers)) {}

  bool start(std::string* error);
  void stop();

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(tcp::socket socket);
  Response handle(const Request& req);
  // POST /cutover runs for seconds (its pause and acks): on a thread of its own, so /status,
  // /metrics and the probes stay answered meanwhile. One at a time; a second gets 409 at once.
  static bool runs_off_thread(const Request& req);
  asio::awaitable<Response> handle_off_thread(const Request& req);
  bool open_acceptor(const tcp::endpoint& endpoint, bool dual_stack, std::string* error);

  // Tracks a live connection so that stop() can close it; lives in the connection's coroutine.
  struct ConnectionGuard {
    ConnectionGuard(Impl* impl, beast::tcp_stream* stream) : impl_(impl), stream_(stream) {
      impl_->connections_.insert(stream_);
    }
    ~ConnectionGuard() { impl_->connections_.erase(stream_); }
    ConnectionGuard(const ConnectionGuard&) = delete;
    ConnectionGuard& operator=(const ConnectionGuard&) = delete;
    Impl* impl_;
    beast::tcp_stream* stream_;
  };

  const std::string host_;
  const uint16_t requested_port_;
  const AdminHandlers handlers_;

  // Concurrency hint 1: only the admin thread runs this context.
  asio::io_context ioc_{1};
  tcp::acceptor acceptor_{ioc_};
  asio::steady_timer accept_backoff_{ioc_};
  std::atomic<uint16_t> port_{0};

  std::mutex lifecycle_mutex_;  // start() vs stop() from other threads
  bool started_ = false;
  bool stopped_ = false;
  std::thread thread_;

  // Admin thread only.
  bool stopping_ = false;
  std::unordered_set<beast::tcp_stream*> connections_;
  std::shared_ptr<asio::steady_timer> slow_done_;  // set while a slow request runs
  // The slow request's thread: started and joined on the admin thread, joined last by stop().
  std::thread slow_;
};

bool AdminServer::Impl::open_acceptor(const tcp::endpoint& endpoint, bool dual_stack,
                                      std::string* error) {
  boost::system::error_code ec;
  const char* step = "open";
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec && dual_stack) {
    step = "setsockopt(IPV6_V6ONLY)";
    acceptor_.set_option(asio::ip::v6_only(false), ec);
  }
  if (!ec) {
    step = "setsockopt(SO_REUSEADDR)";
    acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    step = "bind";
    acceptor_.bind(endpoint, ec);
  }
  if (!ec) {
    step = "listen";
    acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    if (error != nullptr) {
      std::string address = endpoint.address().to_string();
      if (endpoint.address().is_v6()) address = "[" + address + "]";
      *error = "admin listener " + address + ":" + std::to_string(endpoint.port()) + ": " + step +
               ": " + ec.message();
    }
    return false;
  }
  return true;
}

bool AdminServer::Impl::start(std::string* error) {
  std::lock_guard lock(lifecycle_mutex_);
  if (started_) {
    if (error != nullptr) *error = "admin server already started";
    return false;
  }
  if (host_.empty() || host_ == "*") {
    // All interfaces: IPv6 dual-stack where the host has IPv6, else IPv4 only.
    if (!open_acceptor(tcp::endpoint(asio::ip::address_v6::any(), requested_port_),
                       /*dual_stack=*/true, nullptr) &&
        !open_acceptor(tcp::endpoint(asio::ip::address_v4::any(), requested_port_),
                       /*dual_stack=*/false, error)) {
      return false;
    }
  } else {
    boost::system::error_code ec;
    asio::ip::address address = host_ == "localhost"
                                    ? asio::ip::address(asio::ip::address_v4::loopback())
                                    : asio::ip::make_address(host_, ec);
    if (ec) {
      if (error != nullptr) *error = "admin listener: invalid address '" + host_ + "'";
      return false;
    }
    if (!open_acceptor(tcp::endpoint(address, requested_port_), /*dual_stack=*/false, error)) {
      return false;
    }
  }
  boost::system::error_code ec;
  const tcp::endpoint local = acceptor_.local_endpoint(ec);
  port_ = ec ? 0 : local.port();

  asio::co_spawn(ioc_, accept_loop(), [](std::exception_ptr e) {
    if (e) log::error("admin accept loop ended by an exception");
  });
  try {
    thread_ = std::thread([this] {
      // Handlers do not throw (coroutine exceptions end in co_spawn's completion handler); the
      // loop only guards the thread against std::terminate if one ever does.
      for (;;) {
        try {
          ioc_.run();
          return;
        } catch (...) {
          log::error("admin thread: unexpected exception");
        }
      }
    });
  } catch (const std::system_error& e) {
    if (error != nullptr) *error = std::string("admin listener: cannot start thread: ") + e.what();
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    started_ = stopped_ = true;  // one-shot, like a successful start
    return false;
  }
  started_ = true;
  return true;
}

void AdminServer::Impl::stop() {
  std::lock_guard lock(lifecycle_mutex_);
  if (!started_ || stopped_) return;
  stopped_ = true;
  // Closing everything ends every coroutine (their pending operations complete with
  // operation_aborted), after which run() returns because no work is left.
  asio::post(ioc_, [this] {
    stopping_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    accept_backoff_.cancel();
    for (beast::tcp_stream* stream : connections_) {
      stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream->close();
    }
    if (slow_done_) slow_done_->cancel();
  });
  if (thread_.joinable()) thread_.join();
  if (slow_.joinable()) slow_.join();  // a cutover ends within its own timeouts
}

bool AdminServer::Impl::runs_off_thread(const Request& req) {
  const std::string_view target(req.target().data(), req.target().size());
  return req.method() == http::verb::post && target.substr(0, target.find('?')) == "/cutover";
}

asio::awaitable<Response> AdminServer::Impl::handle_off_thread(const Request& req) {
  if (slow_done_) {
    Response busy = text_response(http::status::conflict, req.version(),
                                  "a cutover is already running on this replica\n");
    busy.keep_alive(req.keep_alive());
    busy.prepare_payload();
    co_return busy;
  }
  if (slow_.joinable()) slow_.join();  // the previous one has finished (slow_done_ was reset)
  auto done = std::make_shared<asio::steady_timer>(ioc_, asio::steady_timer::time_point::max());
  auto result = std::make_shared<Response>();
  auto copy = std::make_shared<Request>(req);
  slow_done_ = done;
  slow_ = std::thread([this, done, result, copy] {
    *result = handle(*copy);
    asio::post(ioc_, [done] { done->cancel(); });
  });
  co_await done->async_wait(kUseTuple);
  slow_done_.reset();
  if (stopping_) {  // stop() woke us: the thread may still be writing *result
    Response gone = text_response(http::status::service_unavailable, req.version(),
                                  "pgtandem is stopping\n");
    gone.keep_alive(false);
    gone.prepare_payload();
    co_return gone;
  }
  co_return std::move(*result);
}

asio::awaitable<void> AdminServer::Impl::accept_loop() {
  while (!stopping_) {
    auto [ec, socket] = co_await acceptor_.async_accept(kUseTuple);
    if (stopping_ || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // EMFILE and friends: the listener stays, retry after a pause instead of spinning.
      log::warn("admin accept failed", {{"error", ec.message()}});
      accept_backoff_.expires_after(kAcceptBackoff);
      co_await accept_backoff_.async_wait(kUseTuple);
      continue;
    }
    if (connections_.size() >= kMaxConnections) {
      boost::system::error_code ignored;
      socket.close(ignored);
      continue;
    }
    asio::co_spawn(ioc_, serve(std::move(socket)), [](std::exception_ptr e) {
      // Only allocation failure can get here; it ends this connection and nothing else.
      if (e) log::warn("admin connection ended by an exception");
    });
  }
}

asio::awaitable<void> AdminServer::Impl::serve(tcp::socket socket) {
  // co_spawn starts the coroutine later: stop() may have run in between.
  if (stopping_) co_return;
  beast::tcp_stream stream(std::move(socket));
  ConnectionGuard guard(this, &stream);
  // Bounds what one connection can make us hold, including pipelined bytes after a request.
  beast::flat_buffer buffer(kMaxHeaderBytes + kMaxBodyBytes + 4096);

  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(kMaxHeaderBytes));
    parser.body_limit(kMaxBodyBytes);
    stream.expires_after(std::chrono::seconds(kIdleTimeoutSeconds));
    auto [read_ec, read_bytes] = co_await http::async_read(stream, buffer, parser, kUseTuple);
    (void)read_bytes;

    Response res;
    if (read_ec) {
      // A clean close, an idle timeout, a reset or stop(): nothing to answer.
      if (read_ec.category() != http::make_error_code(http::error::bad_target).category() ||
          read_ec == http::error::end_of_stream || read_ec == http::error::partial_message) {
        co_return;
      }
      // Malformed or oversized request: answer once, then close, since the rest of the byte
      // stream cannot be trusted to start at a message boundary.
      // body_limit comes from the Content-Length check, before the header is marked done.
      const bool header_too_big =
          read_ec == http::error::header_limit ||
          (read_ec == http::error::buffer_overflow && !parser.is_header_done());
      const bool body_too_big =
          read_ec == http::error::body_limit || read_ec == http::error::buffer_overflow;
      if (header_too_big) {
        res = text_response(http::status::request_header_fields_too_large, 11,
                            "request header too large\n");
      } else if (body_too_big) {
        res = text_response(http::status::payload_too_large, 11, "request body too large\n");
      } else {
        res = text_response(http::status::bad_request, 11, "bad request\n");
      }
      res.keep_alive(false);
      res.prepare_payload();
    } else if (runs_off_thread(parser.get())) {
      res = co_await handle_off_thread(parser.get());
    } else {
      res = handle(parser.get());
    }

    const bool keep_alive = res.keep_alive();
    stream.expires_after(std::chrono::seconds(kIdleTimeoutSeconds));
    auto [write_ec, written] = co_await http::async_write(stream, res, kUseTuple);
    (void)written;
    if (write_ec || !keep_alive) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

void for_each_query_param(std::string_view query,
                          const std::function<void(std::string_view, std::string_view)>& fn) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const size_t eq = kv.find('=');
    fn(kv.substr(0, eq), eq == std::string_view::npos ? std::string_view() : kv.substr(eq + 1));
  }
}

Response AdminServer::Impl::handle(const Request& req) {
  std::string_view path(req.target().data(), req.target().size());
  std::string_view query;
  if (const size_t q = path.find('?'); q != std::string_view::npos) {
    query = path.substr(q + 1);
    path = path.substr(0, q);
  }
  const unsigned version = req.version();
  const bool get = req.method() == http::verb::get;
  const bool is_mirror_clear =
      path == "/mirror/crash-window/clear" || path == "/mirror/needs-repair/clear";
  const bool is_post_path = path == "/reload" || path == "/breaker/reset" || path == "/cutover" ||
                            path == "/migrate/progress" || path == "/mirror/fence" || is_mirror_clear;
  const bool is_get_path = path == "/metrics" || path == "/healthz" ||
                           (path == "/readyz" && handlers_.ready) ||
                           (path == "/status" && handlers_.status) ||
                           (path == "/mirror/watermark" && handlers_.mirror_watermark);
  Response res;
  auto from_reply = [&](const AdminReply& r) {
    Response out{static_cast<http::status>(r.status), version};
    out.set(http::field::server, "pgtandem");
    out.set(http::field::content_type, r.content_type);
    out.body() = r.body;
    return out;
  };
  if (is_post_path && ((path == "/reload" && handlers_.reload) ||
                       (path == "/breaker/reset" && handlers_.breaker_reset) ||
                       (path == "/cutover" && handlers_.cutover) ||
                       (path == "/migrate/progress" && handlers_.migrate_progress) ||
                       (path == "/mirror/fence" && handlers_.mirror_fence) ||
                       (is_mirror_clear && handlers_.mirror_clear))) {
    if (req.method() != http::verb::post) {
      res = text_response(http::status::method_not_allowed, version, "method not allowed\n");
      res.set(http::field::allow, "POST");
    } else {
      const auto auth = req.find(http::field::authorization);
      const std::string_view header =
          auth == req.end() ? std::string_view() : std::string_view(auth->value().data(),
                                                                    auth->value().size());
      switch (check_bearer(header, handlers_.token)) {
        case BearerCheck::kNotConfigured:
          res = text_response(http::status::forbidden, version,
                              "POST endpoints are disabled: set [admin] token or token_file in "
                              "the config and restart pgtandem\n");
          break;
        case BearerCheck::kMissing:
        case BearerCheck::kWrong:
          log::warn("admin request refused: bad or missing token", {{"path", path}});
          res = text_response(http::status::unauthorized, version,
                              "missing or wrong bearer token\n");
          res.set(http::field::www_authenticate, "Bearer realm=\"pgtandem\"");
          break;
        case BearerCheck::kOk:
          try {
            res = from_reply(path == "/reload"             ? handlers_.reload()
                             : path == "/cutover"          ? handlers_.cutover(query)
                             : path == "/migrate/progress" ? handlers_.migrate_progress(req.body())
                             : is_mirror_clear             ? handlers_.mirror_clear(path, req.body())
                             : path == "/mirror/fence"     ? handlers_.mirror_fence(query)
                                                           : handlers_.breaker_reset(query));
          } catch (...) {
            res = text_response(http::status::internal_server_error, version, "internal error\n");
          }
          break;
      }
    }
  } else if (!is_get_path) {
    res = text_response(http::status::not_found, version, "not found\n");
  } else if (!get) {
    res = text_response(http::status::method_not_allowed, version, "method not allowed\n");
    res.set(http::field::allow, "GET");
  } else if (path == "/metrics") {
    if (!handlers_.metrics) {
      res = text_response(http::status::not_found, version, "not found\n");
    } else {
      try {
        res = text_response(http::status::ok, version, handlers_.metrics());
        res.set(http::field::content_type, kMetricsContentType);
      } catch (...) {
        res = text_response(http::status::internal_server_error, version, "metrics unavailable\n");
      }
    }
  } else if (path == "/readyz") {
    std::string why;
    bool ready = false;
    try {
      ready = handlers_.ready(&why);
    } catch (...) {
      why = "readiness check failed";
    }
    res = ready ? text_response(http::status::ok, version, "ready\n")
                : text_response(http::status::service_unavailable, version,
                                "not ready: " + why + "\n");
  } else if (path == "/status" || path == "/mirror/watermark") {
    try {
      res = text_response(http::status::ok, version,
                          path == "/status" ? handlers_.status() : handlers_.mirror_watermark(query));
      res.set(http::field::content_type, "application/json");
    } catch (...) {
      res = text_response(http::status::internal_server_error, version, "status unavailable\n");
    }
  } else {
    bool healthy = true;
    try {
      healthy = !handlers_.healthy || handlers_.healthy();
    } catch (...) {
      healthy = false;
    }
    res = healthy ? text_response(http::status::ok, version, "ok\n")
                  : text_response(http::status::service_unavailable, version, "unhealthy\n");
  }
  res.keep_alive(req.keep_alive());
  res.prepare_payload();
  if (req.method() == http::verb::head) {
    // A HEAD response has headers only; closing keeps framing unambiguous for any client.
    res.body().clear();
    res.keep_alive(false);
  }
  return res;
}

bool constant_time_equal(std::string_view given, std::string_view expected) {
  // Every byte of `given` is compared against some byte of `expected`; the length difference is
  // folded in, so the loop never ends early and its duration reveals nothing about `expected`.
  unsigned diff = given.size() == expected.size() ? 0u : 1u;
  if (expected.empty()) return false;
  for (size_t i = 0; i < given.size(); ++i) {
    diff |= static_cast<unsigned char>(given[i]) ^
            static_cast<unsigned char>(expected[i % expected.size()]);
  }
  return diff == 0;
}

BearerCheck check_bearer(std::string_view authorization, std::string_view token) {
  if (token.empty()) return BearerCheck::kNotConfigured;
  while (!authorization.empty() && authorization.front() == ' ') authorization.remove_prefix(1);
  if (authorization.empty()) return BearerCheck::kMissing;
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() < kScheme.size()) return BearerCheck::kWrong;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    // The scheme is case-insensitive (RFC 9110); the token is not.
    const char c = authorization[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != kScheme[i]) {
      return BearerCheck::kWrong;
    }
  }
  std::string_view given = authorization.substr(kScheme.size());
  while (!given.empty() && given.front() == ' ') given.remove_prefix(1);
  while (!given.empty() && given.back() == ' ') given.remove_suffix(1);
  return constant_time_equal(given, token) ? BearerCheck::kOk : BearerCheck::kWrong;
}

AdminServer::AdminServer(std::string host, uint16_t port, AdminHandlers handlers)
    : impl_(std::make_unique<Impl>(std::move(host), port, std::move(handlers))) {}

AdminServer::~AdminServer() { stop(); }

bool AdminServer::start(std::string* error) { return impl_->start(error); }

uint16_t AdminServer::port() const { return impl_->port_; }

void AdminServer::stop() { impl_->stop(); }

}  // namespace pgtandem::proxy
